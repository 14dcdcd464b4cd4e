"""How a second copy of the ASGI middleware recognises a request that is recorded already (the
mark the first copy leaves in the scope travels with copies of it), and a new request made
in-process while one runs is still recorded."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from telemetry_web import Telemetry, TelemetryMiddleware

from ._support import client_for, labels, scrape

pytestmark = pytest.mark.asyncio


class _InBetween:
    """A middleware between two copies of ours: ``rewrite`` hands on a shallow copy of the scope
    with a rewritten path (as proxies' prefix strippers do); ``read`` reads the headers through
    Starlette's Request, which replaces the scope's header list with a copy
    (``Headers(scope=...)``), on the scope itself or (``read copy``) on a shallow copy."""

    def __init__(self, app: ASGIApp, kind: str) -> None:
        self.app = app
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.kind == "rewrite":
                scope = {**scope, "path": "/api/" + scope["path"][len("/old/") :]}
            else:
                scope = {**scope} if self.kind == "read copy" else scope
                assert Request(scope).headers["host"]
        await self.app(scope, receive, send)


@pytest.mark.parametrize(
    ("kind", "path"), [("rewrite", "/old/users/5"), ("read", "/api/users/5"),
                       ("read copy", "/api/users/5")],
)  # fmt: skip
async def test_second_copy_behind_another_middleware_records_nothing(
    tel: Telemetry, kind: str, path: str
) -> None:
    """A second copy of the middleware, behind a middleware that copied the scope or replaced
    its header list, passes the request the first copy records through."""

    async def user(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["user_id"]})

    inner = Starlette(routes=[Route("/api/users/{user_id}", user)])
    inner.add_middleware(TelemetryMiddleware, telemetry=tel)
    outer = TelemetryMiddleware(_InBetween(inner, kind), telemetry=tel)
    async with client_for(outer) as client:
        response = await client.get(path)
        assert response.json() == {"id": "5"}
        assert len(response.headers.get_list("x-request-id")) == 1
        metrics = await scrape(client)
    assert sum(s.value for s in metrics.named("http_requests_total")) == 1


async def test_request_made_in_process_during_a_request_is_recorded_too(tel: Telemetry) -> None:
    """An endpoint calling an ASGI app in-process (a new scope, in the same task) is not taken
    for a second copy of the middleware: both requests are recorded, each under its route."""
    backend = Starlette(routes=[Route("/items/{item_id}", lambda r: PlainTextResponse("item"))])
    backend.add_middleware(TelemetryMiddleware, telemetry=tel)

    async def front(request: Request) -> Response:
        transport = httpx.ASGITransport(app=backend)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as client:
            answer = await client.get("/items/3")
        return PlainTextResponse(answer.text)

    app = Starlette(routes=[Route("/front", front)])
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        response = await client.get("/front")
        assert response.text == "item"
        metrics = await scrape(client)
    assert metrics.value("http_requests_total", **labels("GET", "/front", 200)) == 1
    assert metrics.value("http_requests_total", **labels("GET", "/items/{item_id}", 200)) == 1
