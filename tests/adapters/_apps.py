"""A small app for the real-server test: ``uvicorn tests.adapters._apps:app``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware

telemetry = Telemetry(service="adapters-server", environment="test")


async def user(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["user_id"]})


app = Starlette(routes=[Route("/api/users/{user_id}", user)])
app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
