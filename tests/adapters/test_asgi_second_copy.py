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


class _RewritePath:
    """A middleware that rewrites the path in a shallow copy of the scope, as proxies' prefix
    strippers do."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/old/"):
            scope = {**scope, "path": "/api/" + scope["path"][len("/old/") :]}
        await self.app(scope, receive, send)


async def test_second_copy_behind_a_scope_copy_records_nothing(tel: Telemetry) -> None:
    """A second copy of the middleware sees a copy of the scope the first one records (a
    middleware in between rewrote the path): it passes the request through."""

    async def user(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["user_id"]})

    inner = Starlette(routes=[Route("/api/users/{user_id}", user)])
    inner.add_middleware(TelemetryMiddleware, telemetry=tel)
    outer = TelemetryMiddleware(_RewritePath(inner), telemetry=tel)
    async with client_for(outer) as client:
        response = await client.get("/old/users/5")
        assert response.json() == {"id": "5"}
        assert len(response.headers.get_list("x-request-id")) == 1
        metrics = await scrape(client)
    assert sum(s.value for s in metrics.named("http_requests_total")) == 1


class _ReadHeaders:
    """A middleware reading the headers through Starlette's Request, which replaces the scope's
    header list with a copy (``Headers(scope=...)``); ``copy`` also hands on a shallow copy of
    the scope."""

    def __init__(self, app: ASGIApp, copy: bool) -> None:
        self.app = app
        self.copy = copy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope} if self.copy else scope
            assert Request(scope).headers["host"]
        await self.app(scope, receive, send)


@pytest.mark.parametrize("copy", [False, True], ids=["same scope", "copied scope"])
async def test_second_copy_behind_a_header_reader_records_nothing(
    tel: Telemetry, copy: bool
) -> None:
    """Between two copies of the middleware, a middleware replaced the scope's header list
    (and maybe the scope): the inner copy still passes the request through."""

    async def user(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["user_id"]})

    inner = Starlette(routes=[Route("/api/users/{user_id}", user)])
    inner.add_middleware(TelemetryMiddleware, telemetry=tel)
    outer = TelemetryMiddleware(_ReadHeaders(inner, copy), telemetry=tel)
    async with client_for(outer) as client:
        response = await client.get("/api/users/8")
        assert response.json() == {"id": "8"}
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
