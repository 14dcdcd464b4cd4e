"""Route labels of Litestar and Quart apps wrapped in ``TelemetryMiddleware(app)``, as the
launcher wraps any ASGI app, and mounted under Starlette."""

from __future__ import annotations

from typing import Any, cast

import pytest
from litestar import Litestar, Router, asgi, get, post
from litestar.params import FromPath
from litestar.types import Receive, Scope, Send
from quart import Blueprint, Quart
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount
from starlette.types import ASGIApp

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web._http.routes import resolver_for

from ._support import client_for, count_requests

pytestmark = pytest.mark.asyncio


# Litestar and Quart type the ASGI scope and messages as TypedDicts, starlette (and so our
# middleware) as a MutableMapping: the same protocol, two spellings mypy cannot unify, hence the
# casts in the two factories.


def litestar_app() -> ASGIApp:
    @get("/users/{user_id:int}", sync_to_thread=False)
    def user(user_id: FromPath[int]) -> dict[str, int]:
        return {"id": user_id}

    @post("/users/{user_id:int}/notes", sync_to_thread=False)
    def note(user_id: FromPath[int]) -> dict[str, int]:
        return {"id": user_id}

    @get("/files/{rest:path}", sync_to_thread=False)
    def files(rest: FromPath[str]) -> str:
        return rest

    @asgi("/static", is_mount=True, copy_scope=True)
    async def static(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"static", "more_body": False})

    tenant = Router(path="/v1/{tenant:str}", route_handlers=[user])
    return cast("ASGIApp", Litestar([user, note, files, static, tenant]))


LITESTAR_CASES = [
    (("GET", "/users/3"), "/users/{user_id}", 200),
    (("GET", "/v1/acme/users/3"), "/v1/{tenant}/users/{user_id}", 200),
    (("GET", "/files/a/b.txt"), "/files/{rest}", 200),
    (("GET", "/static/css/site.css"), "/static/{path}", 200),
    (("POST", "/users/3/notes"), "/users/{user_id}/notes", 201),
    (("DELETE", "/users/3"), "/users/{user_id}", 405),
    (("GET", "/users/not-a-number"), "<unmatched>", 404),
    (("GET", "/nothing"), "<unmatched>", 404),
]


@pytest.mark.parametrize("layers", [0, 1], ids=["bare", "behind-middleware"])
@pytest.mark.parametrize(("request_", "route", "status"), LITESTAR_CASES)
async def test_litestar_templates(
    tel: Telemetry, request_: tuple[str, str], route: str, status: int, layers: int
) -> None:
    """Litestar apps are labelled with the template Litestar records (``path_template``)."""
    app: Any = litestar_app()
    if layers:
        app = GZipMiddleware(app)
    counted = await count_requests(TelemetryMiddleware(app, telemetry=tel), [request_] * 2)
    assert counted == {(request_[0], route, str(status)): 2}


def quart_app() -> ASGIApp:
    app = Quart(__name__)

    @app.get("/users/<int:user_id>")
    async def user(user_id: int) -> str:
        return str(user_id)

    @app.route("/files/<path:rest>", methods=["GET"])
    async def files(rest: str) -> str:
        return rest

    @app.get("/slash/")
    async def slash() -> str:
        return "slash"

    blueprint = Blueprint("admin", __name__, url_prefix="/admin/<tenant>")

    @blueprint.get("/pages/<slug>")
    async def page(tenant: str, slug: str) -> str:
        return slug

    app.register_blueprint(blueprint)
    return cast("ASGIApp", app)


QUART_CASES = [
    (("GET", "/users/3"), "/users/<int:user_id>", 200),
    (("GET", "/files/a/b.txt"), "/files/<path:rest>", 200),
    (("GET", "/admin/acme/pages/home"), "/admin/<tenant>/pages/<slug>", 200),
    (("GET", "/slash/"), "/slash/", 200),
    (("GET", "/slash"), "<unmatched>", 308),
    (("DELETE", "/users/3"), "/users/<int:user_id>", 405),
    (("GET", "/users/not-a-number"), "<unmatched>", 404),
]


@pytest.mark.parametrize(("request_", "route", "status"), QUART_CASES)
async def test_quart_rules(
    tel: Telemetry, request_: tuple[str, str], route: str, status: int
) -> None:
    """Quart apps are labelled with their werkzeug rule, as Flask apps are."""
    app = TelemetryMiddleware(quart_app(), telemetry=tel)
    counted = await count_requests(app, [request_] * 2)
    assert counted == {(request_[0], route, str(status)): 2}


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/lit/users/3", "/lit/users/{user_id}"),
        ("/q/acme/users/3", "/q/{tenant}/users/<int:user_id>"),
        ("/lit/nothing", "<unmatched>"),
    ],
)
async def test_frameworks_mounted_under_starlette(tel: Telemetry, path: str, route: str) -> None:
    """A Litestar or Quart app mounted in Starlette: the mount's template joined with theirs."""
    app = Starlette(
        routes=[
            Mount("/lit", app=litestar_app()),
            Mount("/q/{tenant}", app=GZipMiddleware(quart_app())),
        ]
    )
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    counted = await count_requests(app, [("GET", path)])
    assert [key[1] for key in counted] == [route]


async def test_litestar_span_name_and_log_line(
    tel: Telemetry, finished_spans: Any, log_sink: Any
) -> None:
    """The span name and the request log line carry the Litestar template too."""
    app = TelemetryMiddleware(litestar_app(), telemetry=tel)
    async with client_for(app) as client:
        assert (await client.get("/v1/acme/users/3")).status_code == 200
    assert [span.name for span in finished_spans(tel)] == ["GET /v1/{tenant}/users/{user_id}"]
    assert [line["route"] for line in log_sink.request_lines()] == ["/v1/{tenant}/users/{user_id}"]


@pytest.mark.parametrize(
    ("factory", "path", "route"),
    [
        (lambda: GZipMiddleware(Starlette(routes=[Mount("/m", app=litestar_app())])),
         "/m/users/1", "/m/users/{user_id}"),
        (litestar_app, "/users/1", "/users/{user_id}"),
        (quart_app, "/users/1", "/users/<int:user_id>"),
    ],
)  # fmt: skip
async def test_resolver_for_is_a_plain_resolver(factory: Any, path: str, route: str) -> None:
    """``resolver_for(app)`` (what the launcher can reuse) is a ``scope -> template``
    callable; an app nobody understands has none."""
    resolver = resolver_for(factory())
    assert resolver is not None
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "scheme": "http",
             "headers": [(b"host", b"testserver")]}  # fmt: skip
    assert resolver(scope) == route
    assert resolver_for(lambda scope, receive, send: None) is None
