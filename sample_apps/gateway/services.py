"""The two upstreams: ``orders`` (with a flaky and a slow route) and ``inventory``."""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware

_failed_once: set[str] = set()


async def order(request: Request) -> JSONResponse:
    return JSONResponse({"order": request.path_params["order_id"],
                         "traceparent": request.headers.get("traceparent")})  # fmt: skip


async def flaky(request: Request) -> JSONResponse:
    """503 the first time a key is asked for, 200 afterwards."""
    key = request.path_params["key"]
    if key not in _failed_once:
        _failed_once.add(key)
        return JSONResponse({"error": "try again"}, status_code=503)
    return JSONResponse({"key": key})


async def slow(request: Request) -> JSONResponse:
    await asyncio.sleep(float(os.environ.get("ORDERS_SLOW_SECONDS", "3")))
    return JSONResponse({"slow": True})


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"item": request.path_params["item_id"], "stock": 3})


def _service(name: str, routes: list[Route]) -> Starlette:
    app = Starlette(routes=routes)
    app.add_middleware(TelemetryMiddleware, telemetry=Telemetry(service=name))
    return app


orders = _service("orders", [
    Route("/orders/{order_id}", order),
    Route("/flaky/{key}", flaky),
    Route("/slow", slow),
])  # fmt: skip
inventory = _service("inventory", [Route("/items/{item_id}", item)])
