"""The response to an exception that escaped the ASGI middleware.

Added with ``add_middleware``, :class:`~telemetry_web.asgi.TelemetryMiddleware` sits inside
Starlette's outermost error middleware, which renders the response to an unhandled exception
(the app's 500 handler, or the debug page). :class:`ErrorResponseObserver` wraps the app's built
middleware stack to see that response: the middleware defers such a request to it
(:meth:`ObserverSlot.defer`), and the observer records the status actually sent, adds the
request id and finishes the request once the response is out.
"""

from __future__ import annotations

from typing import Any, Final

from .exchange import Exchange
from .scope import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "OBSERVER_KEY",
    "PLAIN_500",
    "ErrorResponseObserver",
    "ObserverSlot",
    "plain_500_expected",
    "safe_500",
]

# Set by the observer around a Starlette app's middleware stack.
OBSERVER_KEY: Final = "telemetry_web.error_observer"
# Left there instead of a slot when the stack's error middleware answers with a plain 500:
# the middleware sends that 500 itself, with the request id, and nothing is observed.
PLAIN_500 = object()


class ObserverSlot:
    """Where the middleware leaves a request for the observer (one per request it sees); its
    :meth:`send` is what the observed stack sends through (a bound method, no closure)."""

    __slots__ = ("_send", "deferred")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.deferred: Exchange | None = None

    def defer(self, exchange: Exchange) -> None:
        exchange.defer()
        self.deferred = exchange

    async def send(self, message: Message) -> None:
        deferred = self.deferred
        if deferred is not None:
            message = deferred.observe(message)
        await self._send(message)


class ErrorResponseObserver:
    """Wraps a Starlette app's built middleware stack (outermost: its error middleware), to see
    the response to an exception that escaped ``TelemetryMiddleware``. Costs one slot and its
    send per request; does work only for a deferred request.

    ``plain``: the stack was built without a 500 handler and not in debug mode (Starlette reads
    both when it builds the stack), so its answer would be a plain 500: nothing to observe.
    """

    def __init__(self, app: ASGIApp, plain: bool = False) -> None:
        self.app = app
        self.plain = plain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.plain:
            scope[OBSERVER_KEY] = PLAIN_500
            await self.app(scope, receive, send)
            return
        slot = scope[OBSERVER_KEY] = ObserverSlot(send)
        try:
            await self.app(scope, receive, slot.send)
        finally:
            deferred = slot.deferred
            if deferred is not None:
                deferred.finish(scope, deferred.status or 500)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # look like the stack we wrap (its .app, .handler, …)


def plain_500_expected(app: Any) -> bool:
    """Whether the response to an escaped exception would be a plain 500 anyway.

    True for a plain ASGI app (the server answers) and for a Starlette app without a 500
    handler and not in debug mode. The observer handles every other case, from the app's
    second request on (or its first, when the server runs the lifespan, as uvicorn does).
    """
    if app is None:
        return True
    if getattr(app, "debug", False):
        return False
    handlers = getattr(app, "exception_handlers", None) or {}
    return 500 not in handlers and Exception not in handlers


async def safe_500(send: Send) -> None:
    """A plain 500 (through the exchange's ``send``, so it carries the request id)."""
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"Internal Server Error"})
    except Exception:  # the client is gone; the exception that caused this is what matters
        pass
