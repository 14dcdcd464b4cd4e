"""One ASGI HTTP request between the app and the server, and how it is finished.

:class:`Exchange` is the request's state while the app runs: its ``receive`` and ``send``
methods are what the app is given. ``receive`` counts the request body (chunked bodies declare no
length) and notes a disconnect; ``send`` captures the status and the wanted response headers,
adds ``X-Request-ID`` to the response start unless the app set one, counts the response body and
keeps the time of its last chunk (a streamed response is timed to its end, not to the return of
the endpoint). One slotted object per request: no closures, no cells.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from .. import semconv as sc
from .routes import RecordedRoutes, RouteResolver
from .scope import Message, Receive, Scope, Send, capture_response

__all__ = ["RECORDED", "ROUTE_KEY", "Exchange", "resolved_route"]

_log: Final = logging.getLogger("telemetry_web")
_perf: Final = time.perf_counter
# (source, token) of the request's route label, for the check once the app ran (finish).
ROUTE_KEY: Final = "telemetry_web.route"
# For apps no source understands: reads what a Starlette router recorded, if one ran.
RECORDED: Final = RecordedRoutes()


class Exchange:
    """One HTTP request between the app and the server.

    Attributes:
        active: the lifecycle's request (``ActiveRequest``).
        app: the app object found in the scope when the request began (None: a plain ASGI app).
        status: the status sent (0 until the response starts).
        started: whether the response start went out.
        deferred: whether an observer outside us finishes the request (see error_responses).
        error: the exception that escaped the app, if any.
    """

    __slots__ = ("_receive", "_send", "active", "app", "capture", "deferred", "disconnected",
                 "ended", "error", "id_header", "received", "request_size", "response_size",
                 "started", "status")  # fmt: skip

    def __init__(
        self,
        active: Any,
        receive: Receive,
        send: Send,
        app: Any,
        id_name: bytes,
        request_size: int,
        capture: dict[bytes, str] | None,
    ) -> None:
        self.active = active
        self._receive = receive
        self._send = send
        self.app = app
        # The declared body size counts even when the app never reads the body (a 405, a 401).
        self.request_size = request_size
        self.capture = capture
        self.id_header = (id_name, active.request_id.encode("latin-1"))
        self.received = 0
        self.response_size = 0
        self.status = 0
        self.started = False
        self.disconnected = False
        self.deferred = False
        self.ended: float | None = None
        self.error: BaseException | None = None

    async def receive(self) -> Message:
        message = await self._receive()
        kind = message["type"]
        if kind == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.request_size:  # chunked bodies declare no length
                self.request_size = self.received
        elif kind == "http.disconnect":
            self.disconnected = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":  # what start() does, inline: once per request
            self.status = message["status"]
            self.started = True
            headers = message.get("headers") or []
            if self.capture is not None:
                capture_response(self.active, headers, self.capture)
            id_header = self.id_header
            if not _has_header(headers, id_header[0]):
                # A new message and list: the app's may be reused (a Response's raw_headers).
                message = {**message, "headers": [*headers, id_header]}
        elif kind == "http.response.body":
            self.response_size += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended = _perf()
        await self._send(message)

    def observe(self, message: Message) -> Message:
        """What ``send`` does, for a message sent by someone else (see error_responses)."""
        kind = message["type"]
        if kind == "http.response.start":
            return self.start(message)
        if kind == "http.response.body":
            self.response_size += len(message.get("body", b""))
            if not message.get("more_body", False):
                self.ended = _perf()
        return message

    def start(self, message: Message) -> Message:
        """The response start: its status and wanted headers kept, the request id added."""
        self.status = message["status"]
        self.started = True
        headers = message.get("headers") or []
        if self.capture is not None:
            capture_response(self.active, headers, self.capture)
        if not _has_header(headers, self.id_header[0]):
            message = {**message, "headers": [*headers, self.id_header]}
        return message

    def defer(self) -> None:
        """The app's error middleware answers outside us: the observer finishes the request
        (nothing was sent yet, so its status and sizes are still to come)."""
        self.deferred = True

    def finish(self, scope: Scope, status: int | None = None) -> None:
        """Record the request: once the app returned or raised (``status`` None: from what was
        sent; nothing when deferred), or, deferred, once the error response went out."""
        if status is None:
            if self.deferred:
                return
            status = self.status
            if not self.started or status == 0:
                cancelled = self.disconnected or isinstance(self.error, asyncio.CancelledError)
                status = 499 if cancelled else 500
            # An exception after the response started: its status is what the client saw.
        active = self.active
        # What the framework recorded wins: the span name, metrics and log line all carry it.
        try:
            late = _route_from_scope(scope)
        except Exception:
            _log.exception("telemetry-web could not read the route the framework recorded")
            late = None
        if late is not None:
            active.route = late
        error = self.error
        try:
            active.finish(
                status,
                request_size=self.request_size,
                response_size=self.response_size,
                exception=error if isinstance(error, Exception) else None,
                ended=self.ended,
            )
        except Exception:
            _log.exception("telemetry-web could not record a request")


def _has_header(headers: Any, name: bytes) -> bool:
    """Whether ``headers`` hold ``name`` (lower-case), in any case; only names of its length
    are lower-cased."""
    size = len(name)
    for raw_name, _ in headers:  # noqa: SIM110 (a loop: no generator per response)
        if len(raw_name) == size and raw_name.lower() == name:
            return True
    return False


def resolved_route(resolver: RouteResolver, scope: Scope) -> str:
    """The label from the user's ``route_resolver``."""
    try:
        template = resolver(dict(scope))
    except Exception:
        _log.exception("route_resolver failed; labelling the request <unmatched>")
        template = None
    if template:
        return template
    # What a Starlette router records while the app runs may still label it.
    scope[ROUTE_KEY] = (RECORDED, RECORDED.before(scope)[1])
    return sc.ROUTE_UNMATCHED


def _route_from_scope(scope: Scope) -> str | None:
    """The route label the framework recorded while the app ran, or None to keep ours."""
    pending = scope.get(ROUTE_KEY)
    if pending is None:
        return None
    source, token = pending
    return source.after(scope, token)  # type: ignore[no-any-return]
