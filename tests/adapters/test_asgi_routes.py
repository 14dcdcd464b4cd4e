"""Route labels of Starlette and FastAPI apps: mounts through middleware, sub-applications,
hosts, included routers, and the route the router recorded winning over the guess."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, Router

from telemetry_web import Telemetry, TelemetryMiddleware

from ._support import client_for, count_requests, scrape

pytestmark = pytest.mark.asyncio

Request_ = tuple[str, str]  # (method, path)


async def _ok(request: Request) -> Response:
    return PlainTextResponse("ok")


class _Backend(AuthenticationBackend):
    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser]:
        return AuthCredentials(["authenticated"]), SimpleUser("ada")


def _users() -> Starlette:
    return Starlette(
        routes=[
            Route("/users/{user_id}", _ok, methods=["GET"]),
            Route("/files/{rest:path}", _ok),
        ]
    )


def _opaque(app: Any) -> Any:
    """Middleware as a closure: no ``.app`` to look through."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        await app(scope, receive, send)

    return wrapped


async def _raw(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


def _fastapi_items() -> FastAPI:
    sub = FastAPI()

    @sub.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    return sub


def starlette_layouts() -> Starlette:
    """One app with every mount layout under test."""
    return Starlette(
        routes=[
            Route("/files/{rest:path}", _ok),
            Mount("/gz", app=GZipMiddleware(_users())),
            Mount("/auth", app=AuthenticationMiddleware(_users(), backend=_Backend())),
            Mount(
                "/layers",
                app=GZipMiddleware(
                    TrustedHostMiddleware(
                        CORSMiddleware(_users(), allow_origins=["*"]), allowed_hosts=["*"]
                    )
                ),
            ),
            Mount(
                "/built",
                app=Starlette(routes=_users().routes, middleware=[Middleware(GZipMiddleware)]),
            ),
            Mount("/tenants/{tid}", app=GZipMiddleware(_users())),
            Mount("/closure", app=_opaque(_users())),
            Mount("/raw", app=_raw),
            Mount("/deep", routes=[Mount("/er", app=GZipMiddleware(_users()))]),
        ]
    )


STARLETTE_CASES = [
    (("GET", "/files/a/b.txt"), "/files/{rest:path}", 200),
    (("GET", "/gz/users/1"), "/gz/users/{user_id}", 200),
    (("GET", "/gz/files/x/y"), "/gz/files/{rest:path}", 200),
    (("GET", "/auth/users/1"), "/auth/users/{user_id}", 200),
    (("GET", "/layers/users/1"), "/layers/users/{user_id}", 200),
    (("GET", "/built/users/1"), "/built/users/{user_id}", 200),
    (("GET", "/tenants/acme/users/1"), "/tenants/{tid}/users/{user_id}", 200),
    (("GET", "/closure/users/1"), "/closure/users/{user_id}", 200),
    (("GET", "/raw/anything/here"), "/raw/{path}", 200),
    (("GET", "/deep/er/users/1"), "/deep/er/users/{user_id}", 200),
    (("POST", "/gz/users/1"), "/gz/users/{user_id}", 405),
    (("POST", "/tenants/acme/users/1"), "/tenants/{tid}/users/{user_id}", 405),
    (("GET", "/gz/nothing"), "<unmatched>", 404),
    (("GET", "/nothing"), "<unmatched>", 404),
]


@pytest.mark.parametrize(("request_", "route", "status"), STARLETTE_CASES)
async def test_starlette_mount_layouts(
    tel: Telemetry, request_: Request_, route: str, status: int
) -> None:
    """Mounted apps behind any middleware are labelled with the full declared template."""
    app = starlette_layouts()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    assert await _labels(app, [request_]) == [(request_[0], route, str(status))]


@pytest.mark.parametrize("wrapped", [False, True], ids=["add_middleware", "wrapped"])
async def test_every_layout_twice_cached(tel: Telemetry, wrapped: bool) -> None:
    """Repeated requests (served from the cache) keep their labels, added or wrapped."""
    app: Any = starlette_layouts()
    if wrapped:
        app = TelemetryMiddleware(app, telemetry=tel)
    else:
        app.add_middleware(TelemetryMiddleware, telemetry=tel)
    requests = [case[0] for case in STARLETTE_CASES] * 2
    found = await count_requests(app, requests)
    expected: dict[tuple[str, str, str], int] = {}
    for r, route, status in STARLETTE_CASES:
        key = (r[0], route, str(status))
        expected[key] = expected.get(key, 0) + 2
    assert found == expected


async def test_redirect_slashes_stays_unmatched(tel: Telemetry) -> None:
    """A trailing-slash redirect answered by the router is not a route: ``<unmatched>``."""
    app = Starlette(routes=[Route("/users/{user_id}", _ok)])
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        response = await client.get("/users/1/", follow_redirects=False)
        assert response.status_code == 307
        metrics = await scrape(client)
    assert [s.labels["route"] for s in metrics.named("http_requests_total")] == ["<unmatched>"]


async def test_host_routing_through_middleware(tel: Telemetry) -> None:
    """``Host`` routes whose app is wrapped in middleware resolve per host; no host: unmatched."""
    app = Starlette(
        routes=[
            Host("api.example", app=GZipMiddleware(Router(routes=[Route("/v/{a}", _ok)]))),
            Host("{sub}.example", app=Router(routes=[Mount("/m", app=GZipMiddleware(_users()))])),
        ]
    )
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        assert (await client.get("http://api.example/v/1")).status_code == 200
        assert (await client.get("http://www.example/m/users/1")).status_code == 200
        assert (await client.get("http://other.test/v/1")).status_code == 404
        metrics = await scrape(client)
    assert sorted(s.labels["route"] for s in metrics.named("http_requests_total")) == [
        "/m/users/{user_id}",
        "/v/{a}",
        "<unmatched>",
    ]


def fastapi_layouts() -> FastAPI:
    """FastAPI with nested included routers (one prefix with a parameter) and sub-apps."""
    inner = APIRouter()

    @inner.get("/things/{thing_id:int}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"thing_id": thing_id}

    @inner.get("/blob/{rest:path}")
    async def blob(rest: str) -> dict[str, str]:
        return {"rest": rest}

    outer = APIRouter()
    outer.include_router(inner, prefix="/inner")
    outer.add_route("/plain/{p}", _ok)
    app = FastAPI()
    app.include_router(outer, prefix="/v2")
    app.include_router(inner, prefix="/t/{tid:int}")
    sub = _fastapi_items()
    sub.include_router(outer, prefix="/r")
    app.mount("/sub/{tid}", sub)
    app.mount("/wrapped", GZipMiddleware(_fastapi_items()))
    app.mount("/st", CORSMiddleware(_users(), allow_origins=["*"]))
    return app


FASTAPI_CASES = [
    (("GET", "/v2/inner/things/3"), "/v2/inner/things/{thing_id:int}", 200),
    (("GET", "/v2/inner/blob/a/b"), "/v2/inner/blob/{rest:path}", 200),
    (("GET", "/v2/plain/x"), "/v2/plain/{p}", 200),
    (("GET", "/t/7/things/3"), "/t/{tid:int}/things/{thing_id:int}", 200),
    (("GET", "/sub/acme/items/4"), "/sub/{tid}/items/{item_id}", 200),
    (("GET", "/sub/acme/r/inner/things/5"), "/sub/{tid}/r/inner/things/{thing_id:int}", 200),
    (("GET", "/wrapped/items/4"), "/wrapped/items/{item_id}", 200),
    (("GET", "/st/users/9"), "/st/users/{user_id}", 200),
    (("DELETE", "/v2/inner/things/3"), "/v2/inner/things/{thing_id:int}", 405),
    (("DELETE", "/wrapped/items/4"), "/wrapped/items/{item_id}", 405),
    (("GET", "/v2/inner/things/not-a-number"), "<unmatched>", 404),
    (("GET", "/nothing"), "<unmatched>", 404),
]


@pytest.mark.parametrize(("request_", "route", "status"), FASTAPI_CASES)
async def test_fastapi_layouts(tel: Telemetry, request_: Request_, route: str, status: int) -> None:
    """Included routers (nested, prefixed) and mounted sub-apps get their declared templates."""
    app = fastapi_layouts()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    assert await _labels(app, [request_]) == [(request_[0], route, str(status))]


async def test_fastapi_redirect_slashes_stays_unmatched(tel: Telemetry) -> None:
    """FastAPI's trailing-slash redirect is labelled ``<unmatched>``."""
    app = fastapi_layouts()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        response = await client.get("/v2/inner/things/3/", follow_redirects=False)
        assert response.status_code == 307
        metrics = await scrape(client)
    assert [s.labels["route"] for s in metrics.named("http_requests_total")] == ["<unmatched>"]


# --- what the router recorded wins ---------------------------------------------------------------


class _Rewrite:
    """Middleware rewriting ``scope["path"]`` in place before the router sees it."""

    def __init__(self, app: Any, old: str, new: str) -> None:
        self.app, self.old, self.new = app, old, new

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.old):
            scope["path"] = self.new + scope["path"][len(self.old) :]
        await self.app(scope, receive, send)


@pytest.mark.parametrize("readable", [True, False], ids=["see-through", "opaque"])
@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/old/users/7", "/tenants/{tid}/users/{user_id}"),
        ("/v1/users/7", "/v2/users/{user_id}"),
        ("/v1/users/7/", "<unmatched>"),
    ],
)
async def test_rewritten_path_uses_the_recorded_route(
    tel: Telemetry, finished_spans: Any, log_sink: Any, path: str, route: str, readable: bool
) -> None:
    """A path rewritten before the router: metrics, span name and log line carry the route the
    router matched (with the mount's template, never its concrete value), whether or not the
    router could be read ahead through the rewriting middleware."""
    routes = Starlette(
        routes=[
            Route("/v1/users/{uid}", _ok),
            Route("/v2/users/{user_id}", _ok),
            Mount("/tenants/{tid}", app=GZipMiddleware(_users())),
        ]
    )
    inner: Any = _Rewrite(_Rewrite(routes, "/old", "/tenants/42"), "/v1/", "/v2/")
    if not readable:
        inner = _opaque(inner)
    app = TelemetryMiddleware(inner, telemetry=tel)
    found = await count_requests(app, [("GET", path)] * 2)
    assert list(found) == [("GET", route, "307" if path.endswith("/") else "200")]
    spans = finished_spans(tel)
    assert {span.name for span in spans} == {"GET" if route == "<unmatched>" else f"GET {route}"}
    assert {line["route"] for line in log_sink.request_lines()} == {route}


async def test_routes_added_after_the_first_request(tel: Telemetry) -> None:
    """A route added to a mounted sub-app after a request was cached is labelled correctly."""
    sub = _users()
    app = Starlette(routes=[Mount("/api", app=GZipMiddleware(sub))])
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    first = await _labels(app, [("GET", "/api/late/1")])
    assert first == [("GET", "<unmatched>", "404")]
    sub.add_route("/late/{n}", _ok)
    app.add_route("/top/{n}", _ok)
    found = await count_requests(app, [("GET", "/api/late/1"), ("GET", "/top/1")])
    assert found == {
        ("GET", "<unmatched>", "404"): 1,
        ("GET", "/api/late/{n}", "200"): 1,
        ("GET", "/top/{n}", "200"): 1,
    }


async def test_fastapi_route_added_after_the_first_request(tel: Telemetry) -> None:
    """FastAPI routes declared after the first request get their template, not a guess."""
    app = FastAPI()
    sub = _fastapi_items()
    app.mount("/sub", sub)
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    await _labels(app, [("GET", "/sub/later/1")])

    @sub.get("/later/{n}")
    async def later(n: int) -> dict[str, int]:
        return {"n": n}

    found = await count_requests(app, [("GET", "/sub/later/1")])
    assert found[("GET", "/sub/later/{n}", "200")] == 1


# --- helpers -------------------------------------------------------------------------------------


async def _labels(app: Any, requests: list[Request_]) -> list[tuple[str, str, str]]:
    """The (method, route, status) label sets recorded for ``requests``."""
    return sorted(await count_requests(app, requests))
