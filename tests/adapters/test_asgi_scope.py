"""What the ASGI middleware leaves in the scope, and how a second copy of it recognises a
request that is recorded already.

The middleware adds no key to the scope the app sees: the router looks keys up in the scope for
every route it tries (FastAPI's a dozen times per route), and each key added makes those lookups
collide more often, at a cost that grows with the route count.
"""

from __future__ import annotations

from typing import NoReturn

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


def _keys_app(seen: list[set[str]]) -> Starlette:
    async def keys(request: Request) -> Response:
        seen.append(set(request.scope))
        return PlainTextResponse("ok")

    async def boom(request: Request) -> NoReturn:
        seen.append(set(request.scope))
        raise RuntimeError("boom")

    async def on_error(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("handled", status_code=500)

    return Starlette(
        routes=[Route("/keys/{item}", keys), Route("/boom", boom)],
        exception_handlers={500: on_error},
    )


@pytest.mark.parametrize("path", ["/keys/1", "/boom"])
async def test_the_app_sees_the_scope_keys_it_sees_without_the_middleware(
    tel: Telemetry, path: str
) -> None:
    """The endpoint's scope has exactly the keys it has in the same app without telemetry, on a
    routed request and on one whose exception the app's 500 handler answers."""
    bare_seen: list[set[str]] = []
    async with client_for(_keys_app(bare_seen)) as client:
        for _ in range(2):  # the second request: the error observer is in place for it
            await client.get(path)
    seen: list[set[str]] = []
    app = _keys_app(seen)
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        for _ in range(2):
            response = await client.get(path)
        metrics = await scrape(client)
    route, status = ("/keys/{item}", 200) if path == "/keys/1" else ("/boom", 500)
    assert response.status_code == status
    assert response.headers["x-request-id"]
    assert metrics.value("http_requests_total", **labels("GET", route, status)) == 2
    assert seen == bare_seen
    assert not any(key.startswith("telemetry") for key in set().union(*seen))


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
