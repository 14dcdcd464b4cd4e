"""The route index: a label costs a lookup among the few routes a path can match, in the router's
order, and the index follows route lists that change at run time (mounts, hosts, FastAPI's
included routers), so the label at the start of a request (the in-progress gauge) is right."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Match, Mount, Route, Router, WebSocketRoute

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web._http.routes._index import RouteIndex

from ._support import BASE_LABELS, client_for, count_requests, scrape_telemetry


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _ws(websocket: Any) -> None:
    await websocket.close()


class _Everything(BaseRoute):
    """A route class with its own ``matches``: it must be asked for every path."""

    path = "/never/used"

    def matches(self, scope: Any) -> tuple[Match, dict[str, Any]]:
        return Match.NONE, {}


_ROUTES: list[BaseRoute] = [
    Route("/users/{user_id}", _ok),  # 0
    Route("/users/me", _ok),  # 1
    Route("/{lang}/about", _ok),  # 2: starts with a parameter
    Mount("/static", app=Router()),  # 3
    Host("api.example", app=Router()),  # 4
    _Everything(),  # 5
    Route("/users/", _ok),  # 6
    WebSocketRoute("/users/{user_id}/feed", _ws),  # 7
    Mount("", app=Router()),  # 8: at the root
    Route("/files/report{n}.pdf", _ok),  # 9: a parameter inside a segment
]

_CANDIDATES = [
    ("/users/7", [0, 2, 4, 5, 7, 8]),
    ("/users/me", [0, 1, 2, 4, 5, 7, 8]),
    ("/users/", [0, 2, 4, 5, 6, 7, 8]),
    ("/users/7/feed", [0, 2, 4, 5, 7, 8]),
    ("/static/css/site.css", [2, 3, 4, 5, 8]),
    ("/en/about", [2, 4, 5, 8]),
    ("/files/report3.pdf", [2, 4, 5, 8, 9]),
    ("/scanner/wp-login.php", [2, 4, 5, 8]),
    ("", [2, 4, 5, 8]),
]


@pytest.mark.parametrize(("path", "positions"), _CANDIDATES)
def test_candidates_in_router_order(path: str, positions: list[int]) -> None:
    """Only routes whose leading literal segments start the path are asked, plus those that
    cannot be read that way (parameter first, host, custom class, root mount), in list order."""
    index = RouteIndex(_ROUTES)
    assert [_ROUTES.index(route) for route, _ in index.candidates(path)] == positions


def test_a_thousand_routes_leave_one_candidate() -> None:
    """With 1,000 parameterised routes a path has one candidate and an unknown path none."""
    routes = [Route(f"/api/v1/r{i}/items/{{item_id}}", _ok) for i in range(1000)]
    index = RouteIndex(routes)
    assert [route.path for route, _ in index.candidates("/api/v1/r500/items/7")] == [
        "/api/v1/r500/items/{item_id}"
    ]
    assert index.candidates("/api/v1/zzz") == ()
    assert index.candidates("/wp-admin/setup.php") == ()


def test_fastapi_included_router_is_flattened() -> None:
    """An included router's routes are filed under their full paths, as effective contexts."""
    router = APIRouter(prefix="/api/v1")
    for i in range(50):
        router.add_api_route(f"/r{i}/items/{{item_id}}", _json, methods=["GET"])
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(router)
    index = RouteIndex(app.router.routes)
    assert [route.path for route, _ in index.candidates("/api/v1/r7/items/3")] == [
        "/api/v1/r7/items/{item_id}"
    ]
    assert index.is_current()
    router.add_api_route("/r50/items/{item_id}", _json, methods=["GET"])
    assert not index.is_current()


def test_list_changes_make_the_index_stale() -> None:
    """Appending, removing or replacing a route makes the index stale; nothing else does."""
    routes: list[BaseRoute] = [Route("/a/{x}", _ok), Route("/b/{x}", _ok)]
    index = RouteIndex(routes)
    assert index.is_current()
    routes.append(Route("/c/{x}", _ok))
    assert not index.is_current()
    routes.pop()
    assert index.is_current()
    routes[-1] = Route("/b/{x}", _ok)
    assert not index.is_current()


async def _json(item_id: str) -> dict[str, str]:
    return {"item_id": item_id}


# --- through the middleware ------------------------------------------------------------------


def _many(count: int) -> list[BaseRoute]:
    return [Route(f"/r{i}/items/{{item_id}}", _ok, methods=["GET"]) for i in range(count)]


@pytest.mark.asyncio
async def test_order_decides_between_overlapping_routes(tel: Telemetry) -> None:
    """A parameter route declared before a static one wins, as in the router; a method the
    first route refuses goes to a later route that allows it, else it is that route's 405."""
    app = Starlette(
        routes=[
            Route("/users/{user_id}", _ok, methods=["GET"]),
            Route("/users/me", _ok, methods=["GET", "POST"]),
            *_many(300),
        ]
    )
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    found = await count_requests(
        app, [("GET", "/users/me"), ("POST", "/users/me"), ("POST", "/users/7")]
    )
    assert found == {
        ("GET", "/users/{user_id}", "200"): 1,
        ("POST", "/users/me", "200"): 1,
        ("POST", "/users/{user_id}", "405"): 1,
    }


@pytest.mark.asyncio
async def test_distinct_ids_under_mounts_and_hosts(tel: Telemetry) -> None:
    """Distinct ids under many routes, behind mounts (with middleware) and hosts, get their
    templates; unknown paths stay unmatched."""
    app = Starlette(
        routes=[
            *_many(200),
            Mount("/t/{tid}", app=GZipMiddleware(Starlette(routes=_many(200)))),
            Host("{sub}.example", app=Router(routes=[Mount("/h", routes=_many(50))])),
        ]
    )
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    requests = [("GET", f"/r{i}/items/{i * 7}") for i in (0, 99, 199)]
    requests += [("GET", f"/t/acme{i}/r{i}/items/{i}") for i in (3, 150)]
    requests += [("GET", "/r200/items/1"), ("GET", "/t/acme/nothing"), ("GET", "/zz")]
    found = await count_requests(app, requests)
    async with client_for(app, base_url="http://www.example") as client:
        assert (await client.get("/h/r42/items/9")).status_code == 200
    assert found == {
        ("GET", "/r0/items/{item_id}", "200"): 1,
        ("GET", "/r99/items/{item_id}", "200"): 1,
        ("GET", "/r199/items/{item_id}", "200"): 1,
        ("GET", "/t/{tid}/r3/items/{item_id}", "200"): 1,
        ("GET", "/t/{tid}/r150/items/{item_id}", "200"): 1,
        ("GET", "<unmatched>", "404"): 3,
    }
    hosted = {**BASE_LABELS, "method": "GET", "route": "/h/r42/items/{item_id}", "status": "200"}
    assert scrape_telemetry(tel).value("http_requests_total", **hosted) == 1


def _gauge_reader(tel: Telemetry, route: str) -> Any:
    """An endpoint answering the in-progress gauge of ``route`` while its request runs."""

    async def endpoint(request: Request) -> JSONResponse:
        series = {**BASE_LABELS, "method": "GET", "route": route}
        value = scrape_telemetry(tel).value("http_requests_in_progress", **series)
        return JSONResponse({"in_progress": value})

    return endpoint


@pytest.mark.asyncio
async def test_route_added_at_run_time_labels_the_start(tel: Telemetry) -> None:
    """Routes added to the app and to a mounted app after requests were served are labelled
    from the start: the in-progress gauge carries the new template while the request runs."""
    sub = Starlette(routes=_many(100))
    app = Starlette(routes=[*_many(100), Mount("/sub", app=GZipMiddleware(sub))])
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        assert (await client.get("/late/1")).status_code == 404
        assert (await client.get("/sub/late/1")).status_code == 404
        app.add_route("/late/{n}", _gauge_reader(tel, "/late/{n}"))
        sub.add_route("/late/{n}", _gauge_reader(tel, "/sub/late/{n}"))
        top = (await client.get("/late/2")).json()
        mounted = (await client.get("/sub/late/2")).json()
    assert (top, mounted) == ({"in_progress": 1}, {"in_progress": 1})


@pytest.mark.asyncio
async def test_route_removed_at_run_time_is_unmatched(tel: Telemetry) -> None:
    """A route removed from the list after it served requests no longer labels them."""
    app = Starlette(routes=_many(100))
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    found = await count_requests(app, [("GET", "/r99/items/1")])
    app.router.routes.pop()
    found_after = await count_requests(app, [("GET", "/r99/items/2")])
    assert (found, found_after) == (
        {("GET", "/r99/items/{item_id}", "200"): 1},
        {("GET", "/r99/items/{item_id}", "200"): 1, ("GET", "<unmatched>", "404"): 1},
    )


@pytest.mark.asyncio
async def test_fastapi_router_route_added_at_run_time(tel: Telemetry) -> None:
    """A route added to an included FastAPI router after the first request is labelled with
    its full template from the start of the request."""
    router = APIRouter(prefix="/api")
    for i in range(100):
        router.add_api_route(f"/r{i}/{{item_id}}", _json, methods=["GET"])
    app = FastAPI()
    app.include_router(router)
    app.add_middleware(TelemetryMiddleware, telemetry=tel)

    async def late(n: int) -> dict[str, Any]:
        series = {**BASE_LABELS, "method": "GET", "route": "/api/late/{n}"}
        return {"in_progress": scrape_telemetry(tel).value("http_requests_in_progress", **series)}

    async with client_for(app) as client:
        assert (await client.get("/api/late/1")).status_code == 404
        router.add_api_route("/late/{n}", late, methods=["GET"])
        during = (await client.get("/api/late/2")).json()
    assert during == {"in_progress": 1}
