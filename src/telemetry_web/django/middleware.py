"""``DjangoTelemetryMiddleware``: each Django request as one lifecycle ``begin``/``finish``.

Sync- and async-capable: it takes the mode of the handler after it (``markcoroutinefunction``
when that handler is async, as Django's documentation describes), so under ASGI with async
views no thread switch is added, and under WSGI none either.

A response is finished when the middleware returns it, except a streamed one: its body is
counted as the server iterates it, and the request is finished by a closer registered on the
response, which the server calls once the last byte is out (``HttpResponseBase.close()``). A
``FileResponse`` that a WSGI server sends with ``wsgi.file_wrapper`` (sendfile) is not iterated
in Python: its size is its ``Content-Length`` and it ends when the server closes it.

The OpenTelemetry context ``begin`` attaches stays current until a stream has been iterated, so
spans made while it is produced join the request's trace. It is detached where the stream ends
when that is the context it was attached in (WSGI, and an async middleware chain under ASGI),
and dropped otherwise: any other context is a finished ASGI task's or a thread's copy. ASGI
servers close the response from yet another context, where detaching would fail.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .._engine import Telemetry
from .._http.environ import header_keys, pick_headers, pick_response_headers, query, server
from .._lifecycle import ActiveRequest, RequestLifecycle
from ._request import builtin_response, protocol
from ._routes import RouteLabels
from ._state import get_telemetry

__all__ = ["DjangoTelemetryMiddleware"]

_log = logging.getLogger("telemetry_web")
_perf = time.perf_counter
# Set on the request by the first copy of the middleware; a second copy passes it through.
_REQUEST_ATTR = "_telemetry_web"


class DjangoTelemetryMiddleware:
    """Telemetry for every HTTP request of a Django project (first entry of ``MIDDLEWARE``).

    Args:
        get_response: the next handler, as Django passes it.
        telemetry: the :class:`~telemetry_web.Telemetry` to record into; by default the
            project's (:func:`telemetry_web.django.get_telemetry`), looked up per request so
            that ``set_telemetry`` takes effect at once.
    """

    sync_capable = True
    async_capable = True

    def __init__(
        self, get_response: Callable[[Any], Any], telemetry: Telemetry | None = None
    ) -> None:
        if get_response is None:
            raise ValueError("get_response must be provided.")
        self.get_response = get_response
        self.telemetry = telemetry
        self.routes = RouteLabels()
        self._keys: tuple[RequestLifecycle, dict[str, str]] | None = None
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __repr__(self) -> str:
        return f"<DjangoTelemetryMiddleware async_mode={self.async_mode}>"

    def __call__(self, request: Any) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        answer, recording = self._begin(request)
        if recording is None:
            return answer if answer is not None else self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:  # Django turns exceptions into responses; this is rare
            _abort(recording, exc)
            raise
        return self._complete(recording, request, response)

    async def __acall__(self, request: Any) -> Any:
        answer, recording = self._begin(request)
        if recording is None:
            return answer if answer is not None else await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:  # a client disconnect cancels the request's task
            _abort(recording, exc)
            raise
        return self._complete(recording, request, response)

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Keep a view's exception for the 500 that Django answers it with (always sync:
        Django runs the exception middleware synchronously in both modes)."""
        recording = getattr(request, _REQUEST_ATTR, None)
        if isinstance(recording, _Recording):
            recording.error = exception

    # --- the two ends of a request ------------------------------------------------------------

    def _begin(self, request: Any) -> tuple[Any, _Recording | None]:
        """(built-in endpoint's response, None), (None, None) to pass through, or (None, rec)."""
        telemetry = self.telemetry if self.telemetry is not None else get_telemetry()
        path = request.path_info
        method = request.method
        endpoint = telemetry.endpoints.get(path)
        if endpoint is not None and method in ("GET", "HEAD"):
            return builtin_response(endpoint, request.META, method), None
        if telemetry.is_excluded(path) or hasattr(request, _REQUEST_ATTR):
            return None, None
        try:
            life = telemetry.lifecycle
            meta = request.META
            headers = pick_headers(meta, self._wanted(life))
            active = life.begin(
                method=method,
                scheme=request.scheme,
                path=request.path,
                query=query(meta),
                route=self.routes.before(request),
                headers=headers,
                client=meta.get("REMOTE_ADDR") or None,
                server=server(meta),
                protocol_version=protocol(request, meta),
            )
        except Exception:  # telemetry must never cost the request
            _log.exception("telemetry-web could not start recording a request")
            return None, None
        declared = headers.get("content-length", "")
        size = int(declared) if declared.isdigit() and len(declared) < 16 else 0
        recording = _Recording(active, size)
        setattr(request, _REQUEST_ATTR, recording)
        return None, recording

    def _complete(self, recording: _Recording, request: Any, response: Any) -> Any:
        active = recording.active
        try:
            active.route = self.routes.after(request, active.route)
            name = active.life.request_id_header
            if name not in response:
                response[name] = active.request_id
            names = active.life.response_header_names
            if names:
                headers = pick_response_headers(response.items(), names, latin1=False)
                active.capture_response_headers(headers)
            streamed = getattr(response, "streaming", False)
            if not (streamed and _finish_at_close(recording, response, request.META)):
                _finish(recording, response.status_code, _body_size(response), None)
        except Exception:
            _log.exception("telemetry-web could not record a request")
            _finish(recording, getattr(response, "status_code", 500), 0, None)
        return response

    def _wanted(self, life: RequestLifecycle) -> dict[str, str]:
        keys = self._keys
        if keys is None or keys[0] is not life:  # the Telemetry was reconfigured
            keys = self._keys = (life, header_keys(life.wanted_headers))
        return keys[1]


class _Recording:
    """A request between ``begin`` and ``finish``, kept on the request object."""

    __slots__ = (
        "active", "ended", "error", "finished", "request_size", "response_size", "stream_error",
    )  # fmt: skip

    def __init__(self, active: ActiveRequest, request_size: int) -> None:
        self.active = active
        self.request_size = request_size
        self.response_size = 0
        self.error: BaseException | None = None  # the view's (process_exception) or ours
        self.stream_error: Exception | None = None  # raised while the body was streamed
        self.ended: float | None = None
        self.finished = False


def _finish(recording: _Recording, status: int, size: int, ended: float | None) -> None:
    if recording.finished:
        return
    recording.finished = True
    error = recording.error
    if error is not None and status < 500:
        error = None  # Http404, PermissionDenied…: Django's answer is the outcome, not a failure
    if recording.stream_error is not None:
        error = recording.stream_error  # the status was out already; the span shows the failure
    try:
        recording.active.finish(
            status,
            request_size=recording.request_size,
            response_size=size,
            exception=error if isinstance(error, Exception) else None,
            ended=ended,
        )
    except Exception:
        _log.exception("telemetry-web could not record a request")


def _abort(recording: _Recording, exc: BaseException) -> None:
    recording.error = exc
    _finish(recording, 499 if isinstance(exc, asyncio.CancelledError) else 500, 0, None)


def _body_size(response: Any) -> int:
    try:
        return len(response.content)
    except Exception:
        return 0


def _finish_at_close(recording: _Recording, response: Any, meta: Any) -> bool:
    """Count a streamed body as it is sent and finish when the server closes the response."""
    closers = getattr(response, "_resource_closers", None)
    if not isinstance(closers, list):
        return False
    if getattr(response, "file_to_stream", None) is not None and meta.get("wsgi.file_wrapper"):
        # A WSGI server sends this file with sendfile; wrapping its content would prevent that.
        length = str(response.get("Content-Length", ""))
        recording.response_size = int(length) if length.isdigit() else 0
    else:
        content = response.streaming_content
        if getattr(response, "is_async", False):
            response.streaming_content = _count_async(content, recording)
        else:
            response.streaming_content = _count(content, recording)
    closers.append(functools.partial(_close, recording, response))
    return True


def _close(recording: _Recording, response: Any) -> None:
    recording.active.detach()
    _finish(recording, response.status_code, recording.response_size, recording.ended)


def _count(content: Iterable[bytes], recording: _Recording) -> Iterable[bytes]:
    try:
        for chunk in content:
            recording.response_size += len(chunk)
            yield chunk
    except Exception as exc:
        recording.stream_error = exc
        raise
    finally:
        recording.ended = _perf()
        recording.active.detach()


async def _count_async(
    content: AsyncIterator[bytes], recording: _Recording
) -> AsyncIterator[bytes]:
    try:
        async for chunk in content:
            recording.response_size += len(chunk)
            yield chunk
    except Exception as exc:
        recording.stream_error = exc
        raise
    finally:
        recording.ended = _perf()
        recording.active.detach()


def __getattr__(name: str) -> Any:
    if name == "TelemetryMiddleware":
        warn_renamed(f"{__name__}.TelemetryMiddleware")
        return DjangoTelemetryMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def warn_renamed(old: str) -> None:
    """The one deprecation message for the middleware's old name (``old``, a dotted path).

    Called from a module ``__getattr__``; ``from package import name`` looks the name up twice
    (importlib's ``_handle_fromlist``, then the importing code): only the second one warns.
    """
    if sys._getframe(2).f_code.co_name == "_handle_fromlist":
        return
    warnings.warn(
        f"{old} is deprecated: use telemetry_web.django.DjangoTelemetryMiddleware (in "
        "MIDDLEWARE: 'telemetry_web.django.DjangoTelemetryMiddleware')",
        DeprecationWarning,
        stacklevel=3,
    )
