"""What the three chain services share: the app with its Telemetry, the instrumented client for
the next service, and the trace headers a request arrived with."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.instrumentors import HttpxInstrumentor

TRACE_HEADERS = (
    "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
    "x-b3-sampled", "x-b3-flags",
)  # fmt: skip

Handler = Callable[[Request, "httpx.AsyncClient | None"], Awaitable[dict[str, Any]]]


def trace_headers(request: Request) -> dict[str, str]:
    """The trace-context headers this request arrived with."""
    return {name: request.headers[name] for name in TRACE_HEADERS if name in request.headers}


def build(service: str, path: str, handler: Handler, *, calls_next: bool) -> Starlette:
    """A service answering ``GET path`` with ``handler``'s JSON; with ``calls_next``, the handler
    gets an instrumented client for ``CHAIN_NEXT_URL``."""
    telemetry = Telemetry(service=service)
    state: dict[str, httpx.AsyncClient | None] = {"client": None}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not calls_next:
            yield
            return
        instrumentor = HttpxInstrumentor(telemetry=telemetry)
        async with httpx.AsyncClient(base_url=os.environ["CHAIN_NEXT_URL"], timeout=10) as client:
            instrumentor.instrument(client=client)
            state["client"] = client
            try:
                yield
            finally:
                state["client"] = None
                instrumentor.uninstrument(client=client)

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse(await handler(request, state["client"]))

    app = Starlette(routes=[Route(path, endpoint)], lifespan=lifespan)
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    return app
