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

import sys
import warnings
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .._engine import Telemetry
from .._lifecycle import RequestLifecycle
from ._recording import REQUEST_ATTR, Recording, abort, begin, complete
from ._routes import RouteLabels

__all__ = ["DjangoTelemetryMiddleware"]


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
        answer, recording = begin(self, request)
        if recording is None:
            return answer if answer is not None else self.get_response(request)
        try:
            response = self.get_response(request)
        except BaseException as exc:  # Django turns exceptions into responses; this is rare
            abort(recording, exc)
            raise
        return complete(self, recording, request, response)

    async def __acall__(self, request: Any) -> Any:
        answer, recording = begin(self, request)
        if recording is None:
            return answer if answer is not None else await self.get_response(request)
        try:
            response = await self.get_response(request)
        except BaseException as exc:  # a client disconnect cancels the request's task
            abort(recording, exc)
            raise
        return complete(self, recording, request, response)

    def process_exception(self, request: Any, exception: Exception) -> None:
        """Keep a view's exception for the 500 that Django answers it with (always sync:
        Django runs the exception middleware synchronously in both modes)."""
        recording = getattr(request, REQUEST_ATTR, None)
        if isinstance(recording, Recording):
            recording.error = exception


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
