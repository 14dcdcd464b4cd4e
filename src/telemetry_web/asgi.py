"""Pure ASGI middleware for Starlette, FastAPI and any ASGI application.

    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)   # Starlette / FastAPI
    app = TelemetryMiddleware(app, telemetry=telemetry)            # any ASGI callable

Each HTTP request gets one server span, its RED metrics and one request log line; ``/metrics``,
``/health`` and ``/ready`` are answered here without touching the app's router.

Added with ``add_middleware``, the middleware sits inside Starlette's outermost error middleware,
which renders the response to an unhandled exception (the app's 500 handler, or the debug page).
To record the status actually sent and put the request id on it, the app's built middleware
stack is wrapped in a thin observer (``build_middleware_stack`` of Starlette and FastAPI is
patched when they are imported, for apps that list this middleware; failing that, the stack is
wrapped the first time the app is seen). A request whose exception escapes us is finished by
that observer once the response is out (``_http/error_responses.py``).

The request path, ``_http`` (``_http/asgi_core.py``, compiled), reads begin → call → finish:
the lifecycle's ``begin``, the app called with the ``receive``/``send`` of a per-request
:class:`~telemetry_web._http.exchange.Exchange`, then ``finish`` with what it saw.
"""

from __future__ import annotations

from typing import Any

import wrapt

from ._http.asgi_core import SCOPE_KEY, ASGICore
from ._http.error_responses import ErrorResponseObserver, plain_500_expected
from ._http.scope import Receive, Scope, Send

__all__ = ["TelemetryMiddleware"]


class TelemetryMiddleware(ASGICore):
    """Telemetry for every HTTP request and websocket of an ASGI app.

    Args:
        app: the ASGI application.
        telemetry: the :class:`~telemetry_web.Telemetry` to record into (default: one built from
            the environment, shared by the process).
        route_resolver: ``scope -> template or None``, for apps whose router no built-in
            source and no ``telemetry_web.route_resolvers`` plugin understands.
    """

    # Defined here, not in the compiled core: servers and frameworks tell an ASGI 3 app by
    # `asyncio.iscoroutinefunction(app.__call__)`, false for a compiled coroutine function.
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and SCOPE_KEY not in scope:
            await self._http(scope, receive, send)
        elif kind == "websocket" and SCOPE_KEY not in scope:
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _observe_built_stack(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    stack = wrapped(*args, **kwargs)
    for middleware in getattr(instance, "user_middleware", ()):
        cls = getattr(middleware, "cls", None)
        if isinstance(cls, type) and issubclass(cls, TelemetryMiddleware):
            return ErrorResponseObserver(stack, plain_500_expected(instance))
    return stack


def _patch_build_middleware_stack(module: Any, class_name: str) -> None:
    cls = getattr(module, class_name, None)
    method = getattr(cls, "build_middleware_stack", None)
    if method is not None and not isinstance(method, wrapt.FunctionWrapper):
        wrapt.wrap_function_wrapper(
            module, f"{class_name}.build_middleware_stack", _observe_built_stack
        )


# Runs when (or, if already imported, as soon as) each framework module is imported.
wrapt.register_post_import_hook(
    lambda module: _patch_build_middleware_stack(module, "Starlette"), "starlette.applications"
)
wrapt.register_post_import_hook(
    lambda module: _patch_build_middleware_stack(module, "FastAPI"), "fastapi.applications"
)
