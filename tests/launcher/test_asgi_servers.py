"""Any ASGI app under any ASGI server, through `telemetry run`: uvicorn (import string,
`--factory`, `--workers`, `uvicorn.run(app)` from the app's own code), hypercorn, granian and
daphne serve a bare ASGI callable, a Starlette app and a Django project, as real processes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from .._metrics import Scrape
from .._net import free_port
from .conftest import DJANGO_PROJECT, LAUNCHER, Server, launch, write

pytestmark = pytest.mark.server

# A plain ASGI callable with no framework and no router; its own CLI starts uvicorn.
BARE_APP = """
    import sys


    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        status = 404 if scope["path"].startswith("/missing") else 200
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"bare " + scope["path"].encode()})


    def create_app():
        return app


    if __name__ == "__main__":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""

STARLETTE_APP = """
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route


    async def user(request):
        return PlainTextResponse("user " + request.path_params["user_id"])


    app = Starlette(routes=[Route("/users/{user_id}", user)])
"""


def requests_by_label(server: Server) -> dict[tuple[str, str, str], float]:
    """(route, status, service) -> count from one /metrics scrape."""
    counts: dict[tuple[str, str, str], float] = {}
    for labels, value in Scrape.parse(server.metrics_text()).series("http_requests_total"):
        key = (labels["route"], labels["status"], labels["service"])
        counts[key] = counts.get(key, 0) + value
    return counts


SERVERS = {
    "uvicorn": ["uvicorn", "app:app", "--port", "{port}", "--no-access-log"],
    "uvicorn-factory": ["uvicorn", "app:create_app", "--factory", "--port", "{port}"],
    "own-cli": ["python", "app.py", "{port}"],
    "hypercorn": ["hypercorn", "--bind", "127.0.0.1:{port}", "app:app"],
    "granian": ["granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", "{port}",
                "app:app"],
    "daphne": ["daphne", "-b", "127.0.0.1", "-p", "{port}", "app:app"],
}  # fmt: skip


def command(args: list[str], port: int) -> list[str]:
    return [*LAUNCHER, *(arg.replace("{port}", str(port)) for arg in args)]


@pytest.mark.parametrize("server_name", list(SERVERS))
def test_bare_asgi_app_is_instrumented_under_every_server(
    tmp_path: Path, port: int, server_name: str
) -> None:
    """A framework-less ASGI callable gets /metrics, /health and /ready, each request counted
    under `<unmatched>` (no router to read: never the raw path), one JSON request line with its
    trace id, and a service named after the app's module (or its script), not unknown_service."""
    write(tmp_path, {"app.py": BARE_APP})
    with launch(command(SERVERS[server_name], port), tmp_path, port) as server:
        assert server.get("/orders/17").text == "bare /orders/17"
        assert server.get("/missing/3").status_code == 404
        assert server.get("/health").status_code == 200
        assert server.get("/ready").status_code in (200, 503)
        assert requests_by_label(server) == {
            ("<unmatched>", "200", "app"): 1,
            ("<unmatched>", "404", "app"): 1,
        }
        lines = server.request_lines()
    assert sorted((line["path"], line["route"], line["status"]) for line in lines) == [
        ("/missing/3", "<unmatched>", 404),
        ("/orders/17", "<unmatched>", 200),
    ]
    assert all(len(str(line["trace_id"])) == 32 for line in lines)
    assert "no app was found" not in server.text()


@pytest.mark.parametrize("server_name", ["uvicorn", "hypercorn", "granian", "daphne"])
def test_starlette_app_is_wrapped_once_with_its_route_templates(
    tmp_path: Path, port: int, server_name: str
) -> None:
    """A Starlette app under each server: the request is counted once (the server hook wraps
    the whole app, the Starlette hook adds no second copy) under the route template, and the
    local store holds exactly one server span for it."""
    write(tmp_path, {"app.py": STARLETTE_APP})
    with launch(command(SERVERS[server_name], port), tmp_path, port) as server:
        assert server.get("/users/42").text == "user 42"
        assert requests_by_label(server) == {("/users/{user_id}", "200", "app"): 1}
        assert len(server.request_lines()) == 1
    with sqlite3.connect(tmp_path / ".telemetry" / "telemetry.db") as db:
        names = [row[0] for row in db.execute("SELECT name FROM spans WHERE kind = 'server'")]
    assert names == ["GET /users/{user_id}"]


WORKER_SERVERS = {
    "uvicorn": ["uvicorn", "{app}", "--workers", "2", "--port", "{port}", "--no-access-log"],
    "hypercorn": ["hypercorn", "--workers", "2", "--bind", "127.0.0.1:{port}", "{app}"],
    "granian": ["granian", "--interface", "asgi", "--workers", "2", "--host", "127.0.0.1",
                "--port", "{port}", "{app}"],
    "gunicorn-uvicorn": ["gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
                         "--bind", "127.0.0.1:{port}", "{app}"],
}  # fmt: skip


@pytest.mark.parametrize("server_name", list(WORKER_SERVERS))
@pytest.mark.parametrize("project", ["starlette", "django"])
def test_two_workers_count_exactly_on_every_scrape(
    tmp_path: Path, port: int, server_name: str, project: str
) -> None:
    """Two workers of each server, for a Starlette app and a Django project: multiprocess
    metrics are prepared before prometheus-client is imported in every worker, so every scrape
    (landing on either worker) shows the total of both."""
    if project == "django":
        write(tmp_path, DJANGO_PROJECT)
        app, route = "mysite.asgi:application", "/users/<int:user_id>"
    else:
        write(tmp_path, {"app.py": STARLETTE_APP})
        app, route = "app:app", "/users/{user_id}"
    args = [arg.replace("{app}", app) for arg in WORKER_SERVERS[server_name]]
    with launch(command(args, port), tmp_path, port) as server:
        for i in range(30):
            assert server.get(f"/users/{i}").status_code == 200
        for _ in range(6):
            assert server.requests_total(route) == 30
        assert "prometheus_client was imported before" not in server.text()


def test_unknown_server_gets_one_notice_and_no_telemetry(tmp_path: Path, port: int) -> None:
    """A process serving HTTP with nothing the launcher knows (the standard library's
    http.server, importing httpx) says so once on stderr, naming what was looked for, and
    builds no telemetry: no store, the app's own answers unchanged."""
    write(
        tmp_path,
        {
            "serve.py": """
                import sys
                from http.server import HTTPServer, SimpleHTTPRequestHandler

                import httpx  # a client library alone builds nothing

                server = HTTPServer(("127.0.0.1", int(sys.argv[1])), SimpleHTTPRequestHandler)
                server.serve_forever()
            """
        },
    )
    with launch([*LAUNCHER, "python", "serve.py", str(port)], tmp_path, port) as server:
        assert server.get("/metrics").status_code == 404
        assert server.get("/serve.py").status_code == 200
    notices = [line for line in server.text().splitlines() if "no app was found" in line]
    assert notices == [
        f"telemetry-web launcher: this process listens on 127.0.0.1:{port} but no app was found "
        "to instrument (looked for uvicorn, hypercorn, granian (ASGI/WSGI), daphne and gunicorn "
        "servers, and Starlette, FastAPI, Flask and Django apps); it runs without telemetry"
    ]
    assert not (tmp_path / ".telemetry").exists()


def test_granian_rsgi_is_named_as_not_instrumented(tmp_path: Path, port: int) -> None:
    """granian's own RSGI interface cannot be wrapped: the app serves and one line says so."""
    write(
        tmp_path,
        {
            "rsgi.py": """
                async def app(scope, proto):
                    proto.response_str(200, [("content-type", "text/plain")], "rsgi")
            """
        },
    )
    args = ["granian", "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port),
            "rsgi:app"]  # fmt: skip
    with launch([*LAUNCHER, *args], tmp_path, port) as server:
        assert server.get("/x").text == "rsgi"
        assert server.get("/metrics").text == "rsgi"
    assert server.text().count("granian's RSGI interface is not instrumented") == 1


def test_service_is_named_after_the_app_package(tmp_path: Path, port: int) -> None:
    """`uvicorn shop.main:app` with no service configured: the service is `shop`; the
    environment still wins when it names one."""
    write(tmp_path, {"shop/__init__.py": "", "shop/main.py": STARLETTE_APP})
    args = ["uvicorn", "shop.main:app", "--port", "{port}", "--no-access-log"]
    with launch(command(args, port), tmp_path, port) as server:
        server.get("/users/1")
        assert {key[2] for key in requests_by_label(server)} == {"shop"}
    port2 = free_port()
    env = {"OTEL_SERVICE_NAME": "checkout"}
    with launch(command(args, port2), tmp_path, port2, env=env) as server:
        server.get("/users/1")
        assert {key[2] for key in requests_by_label(server)} == {"checkout"}


FLASK_APP = """
    from flask import Flask

    app = Flask(__name__)


    @app.get("/users/<int:user_id>")
    def user(user_id):
        return f"user {user_id}"


    def plain(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]
"""

WSGI_WORKER_SERVERS = {
    "hypercorn": ["hypercorn", "--workers", "2", "--bind", "127.0.0.1:{port}", "wsgi:{app}"],
    "granian": ["granian", "--interface", "wsgi", "--workers", "2", "--host", "127.0.0.1",
                "--port", "{port}", "{app}"],
    "uvicorn": ["uvicorn", "--interface", "wsgi", "--workers", "2", "--port", "{port}",
                "--no-access-log", "{app}"],
}  # fmt: skip


@pytest.mark.parametrize("server_name", list(WSGI_WORKER_SERVERS))
@pytest.mark.parametrize(
    ("app", "path", "route"),
    [("app:app", "/users/{i}", "/users/<int:user_id>"), ("app:plain", "/p/{i}", "<unmatched>")],
    ids=["flask", "plain-wsgi"],
)
def test_wsgi_apps_under_asgi_servers_count_once_across_workers(
    tmp_path: Path, port: int, server_name: str, app: str, path: str, route: str
) -> None:
    """A Flask app and a framework-less WSGI callable served through the WSGI interface of
    hypercorn, granian and uvicorn with two workers: each request counted once (Flask by its
    own hook, the bare callable by the WSGI middleware), totals exact on every scrape."""
    write(tmp_path, {"app.py": FLASK_APP})
    args = [arg.replace("{app}", app) for arg in WSGI_WORKER_SERVERS[server_name]]
    with launch(command(args, port), tmp_path, port) as server:
        for i in range(20):
            assert server.get(path.format(i=i)).status_code == 200
        for _ in range(5):
            assert server.requests_total(route) == 20
    assert len(server.request_lines()) == 20


QUART_APP = """
    from quart import Quart

    app = Quart(__name__)


    @app.get("/users/<int:user_id>")
    async def user(user_id):
        return f"user {user_id}"
"""

LITESTAR_APP = """
    from litestar import Litestar, get


    @get("/users/{user_id:int}")
    async def user(user_id: int) -> str:
        return f"user {user_id}"


    app = Litestar(route_handlers=[user])
"""


@pytest.mark.parametrize(
    ("source", "server_name", "route"),
    [
        (QUART_APP, "hypercorn", "/users/<int:user_id>"),
        (QUART_APP, "uvicorn", "/users/<int:user_id>"),
        (LITESTAR_APP, "uvicorn", "/users/{user_id}"),
        (LITESTAR_APP, "granian", "/users/{user_id}"),
    ],
    ids=["quart-hypercorn", "quart-uvicorn", "litestar-uvicorn", "litestar-granian"],
)
def test_quart_and_litestar_apps_get_their_own_route_templates(
    tmp_path: Path, port: int, source: str, server_name: str, route: str
) -> None:
    """Frameworks with no launcher hook of their own are covered by the server hook, with the
    framework's own route template (unknown paths stay `<unmatched>`)."""
    write(tmp_path, {"app.py": source})
    with launch(command(SERVERS[server_name], port), tmp_path, port) as server:
        assert server.get("/users/5").text == "user 5"
        assert server.get("/nowhere/5").status_code == 404
        assert requests_by_label(server) == {
            (route, "200", "app"): 1,
            ("<unmatched>", "404", "app"): 1,
        }


def test_django_project_keeps_its_installed_apps_and_gets_readiness(
    tmp_path: Path, port: int
) -> None:
    """Under `run -- uvicorn mysite.asgi:application` the project's INSTALLED_APPS are left as
    written (apps such as Wagtail hash them into URLs the user sees), and the health runner the
    telemetry_web.django app would start is started anyway: /ready turns 200."""
    import time

    project = dict(DJANGO_PROJECT)
    project["mysite/urls.py"] = """
        from django.conf import settings
        from django.http import JsonResponse
        from django.urls import path


        def installed(request):
            return JsonResponse({"apps": list(settings.INSTALLED_APPS),
                                 "middleware": list(settings.MIDDLEWARE)})


        urlpatterns = [path("installed", installed)]
    """
    # A check on the server's own port: /ready is 503 until the runner's first round.
    project["health.yaml"] = f"""
        health:
          checks:
            - {{name: self, check: {{tcp: {{host: 127.0.0.1, port: {port}}}}}, interval: 1s}}
    """
    write(tmp_path, project)
    args = ["uvicorn", "mysite.asgi:application", "--port", "{port}", "--no-access-log"]
    env = {"TELEMETRY_CONFIG": str(tmp_path / "health.yaml")}
    with launch(command(args, port), tmp_path, port, env=env) as server:
        assert server.get("/installed").json() == {
            "apps": ["django.contrib.contenttypes"],
            "middleware": [
                "telemetry_web.django.DjangoTelemetryMiddleware",
                "django.middleware.common.CommonMiddleware",
            ],
        }
        deadline = time.monotonic() + 10
        while server.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.get("/ready").status_code == 200
        assert requests_by_label(server) == {("/installed", "200", "mysite"): 1}
