"""One Django request between the lifecycle's ``begin`` and ``finish``: the work of
:class:`~telemetry_web.django.DjangoTelemetryMiddleware` (``middleware.py``), compiled
(``scripts/compile.py``); the middleware's module docstring tells how a request is finished.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Iterable
from typing import Any, Final

from .._http.environ import header_keys, pick_headers, pick_response_headers, query, server
from .._lifecycle import ActiveRequest, RequestLifecycle
from ._request import builtin_response, protocol
from ._state import get_telemetry
from ._streams import count_async

__all__ = ["REQUEST_ATTR", "Recording", "abort", "begin", "complete"]

_log: Final = logging.getLogger("telemetry_web")
_perf: Final = time.perf_counter
# Set on the request by the first copy of the middleware; a second copy passes it through.
REQUEST_ATTR: Final = "_telemetry_web"


def begin(middleware: Any, request: Any) -> tuple[Any, Recording | None]:
    """``middleware``'s start of ``request``: (a built-in endpoint's response, None), (None,
    None) to pass it through, or (None, its recording)."""
    telemetry = middleware.telemetry
    if telemetry is None:
        telemetry = get_telemetry()
    path = request.path_info
    method = request.method
    endpoint = telemetry.endpoints.get(path)
    if endpoint is not None and method in ("GET", "HEAD"):
        return builtin_response(endpoint, request.META, method), None
    if telemetry.is_excluded(path) or hasattr(request, REQUEST_ATTR):
        return None, None
    try:
        life = telemetry.lifecycle
        meta = request.META
        headers = pick_headers(meta, _wanted(middleware, life))
        active = life.begin(
            method=method,
            scheme=request.scheme,
            path=request.path,
            query=query(meta),
            route=middleware.routes.before(request),
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
    recording = Recording(active, size)
    setattr(request, REQUEST_ATTR, recording)
    return None, recording


def complete(middleware: Any, recording: Recording, request: Any, response: Any) -> Any:
    """``middleware``'s end of ``request``: the response is out (or its stream set up)."""
    active = recording.active
    try:
        active.route = middleware.routes.after(request, active.route)
        name = active.life.request_id_header
        if name not in response:
            response[name] = active.request_id
        names = active.life.response_header_names
        if names:
            headers = pick_response_headers(response.items(), names, latin1=False)
            active.capture_response_headers(headers)
        streamed = getattr(response, "streaming", False)
        if not (streamed and finish_at_close(recording, response, request.META)):
            finish(recording, response.status_code, body_size(response), None)
    except Exception:
        _log.exception("telemetry-web could not record a request")
        finish(recording, getattr(response, "status_code", 500), 0, None)
    return response


def _wanted(middleware: Any, life: RequestLifecycle) -> dict[str, str]:
    keys = middleware._keys
    if keys is None or keys[0] is not life:  # the Telemetry was reconfigured
        keys = (life, header_keys(life.wanted_headers))
        middleware._keys = keys
    return keys[1]  # type: ignore[no-any-return]


class Recording:
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


def finish(recording: Recording, status: int, size: int, ended: float | None) -> None:
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


def abort(recording: Recording, exc: BaseException) -> None:
    recording.error = exc
    finish(recording, 499 if isinstance(exc, asyncio.CancelledError) else 500, 0, None)


def body_size(response: Any) -> int:
    try:
        return len(response.content)
    except Exception:
        return 0


def finish_at_close(recording: Recording, response: Any, meta: Any) -> bool:
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
            response.streaming_content = count_async(content, recording)
        else:
            response.streaming_content = count(content, recording)
    closers.append(functools.partial(close, recording, response))
    return True


def close(recording: Recording, response: Any) -> None:
    recording.active.detach()
    finish(recording, response.status_code, recording.response_size, recording.ended)


def count(content: Iterable[bytes], recording: Recording) -> Iterable[bytes]:
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
