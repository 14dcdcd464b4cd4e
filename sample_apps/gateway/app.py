"""The gateway: a reverse proxy recording each upstream call through ``telemetry_web.gateway``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware, gateway
from telemetry_web.gateway import (
    GatewayMetricsSettings,
    GatewayRouteSettings,
    GatewayTelemetryConfig,
    GatewayTracingSettings,
)

telemetry = Telemetry(service="gateway")
gw = gateway.configure_telemetry(telemetry, GatewayTelemetryConfig(
    request_logging=True,
    metrics=GatewayMetricsSettings(request_duration=True, response_size=True),
    tracing=GatewayTracingSettings(
        enabled=True, sample_rate=float(os.environ.get("GATEWAY_SAMPLE_RATE", "0.1"))
    ),
    routes=(
        GatewayRouteSettings(match="/ping", sample_rate=0.0, request_log=False, size_metrics=False),
    ),
))  # fmt: skip

UPSTREAMS = {"orders": "GATEWAY_ORDERS_URL", "inventory": "GATEWAY_INVENTORY_URL"}
TIMEOUT = float(os.environ.get("GATEWAY_UPSTREAM_TIMEOUT", "1"))
# Hop-by-hop headers (RFC 9110 section 7.6.1) and those the proxy sets again itself.
_DROPPED = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "host", "content-length", "content-encoding",
})  # fmt: skip
_clients: dict[str, httpx.AsyncClient] = {}


def _forwarded(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _DROPPED}


async def proxy(request: Request) -> Response:
    upstream = request.url.path.split("/")[2]
    client = _clients[upstream]
    outgoing = client.build_request(
        request.method, "/" + request.path_params["path"], params=request.query_params,
        headers=_forwarded(request.headers), content=await request.body(),
    )  # fmt: skip
    try:
        response = await gw.send(client, outgoing, upstream=upstream, retries=1, timeout=TIMEOUT)
    except httpx.TimeoutException:
        return JSONResponse({"error": f"{upstream} timed out"}, status_code=504)
    except httpx.TransportError:
        return JSONResponse({"error": f"{upstream} unreachable"}, status_code=502)
    return Response(response.content, response.status_code, _forwarded(response.headers))


async def ping(request: Request) -> Response:
    return Response("pong")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for name, variable in UPSTREAMS.items():
            base = os.environ[variable]
            _clients[name] = await stack.enter_async_context(httpx.AsyncClient(base_url=base))
        yield
        _clients.clear()


app = Starlette(
    routes=[
        Route("/api/orders/{path:path}", proxy, methods=["GET", "POST"]),
        Route("/api/inventory/{path:path}", proxy, methods=["GET", "POST"]),
        Route("/ping", ping),
    ],
    lifespan=lifespan,
)
app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
