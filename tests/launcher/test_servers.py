"""Unchanged apps under `telemetry run` / `telemetry-instrument`: real servers on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import DJANGO_PROJECT, LAUNCHER, VENV_BIN, launch, write

pytestmark = pytest.mark.server

STARLETTE_APP = """
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route


    async def user(request):
        return PlainTextResponse("user " + request.path_params["user_id"])


    app = Starlette(routes=[Route("/users/{user_id}", user)])
"""

FLASK_APP = """
    from flask import Flask

    app = Flask(__name__)


    @app.get("/users/<int:user_id>")
    def user(user_id):
        return f"user {user_id}"
"""


def test_starlette_under_uvicorn_counts_the_route_template_and_logs(
    tmp_path: Path, port: int
) -> None:
    """An unchanged Starlette app under `run -- uvicorn` serves /metrics with its request
    counted under the route template and writes the JSON request log line."""
    write(tmp_path, {"app.py": STARLETTE_APP})
    command = [*LAUNCHER, "uvicorn", "app:app", "--port", str(port), "--no-access-log"]
    with launch(command, tmp_path, port) as server:
        assert server.get("/users/7").text == "user 7"
        assert server.requests_total("/users/{user_id}") == 1
        lines = server.request_lines()
    assert [(line["route"], line["status"], line["path"]) for line in lines] == [
        ("/users/{user_id}", 200, "/users/7")
    ]
    assert len(str(lines[0]["trace_id"])) == 32


def test_flask_under_gunicorn_two_workers_counts_across_workers(tmp_path: Path, port: int) -> None:
    """An unchanged Flask app under `run -- gunicorn -w 2` counts every request of both workers
    in each /metrics scrape, under Flask's rule template."""
    write(tmp_path, {"app.py": FLASK_APP})
    command = [*LAUNCHER, "gunicorn", "-w", "2", "--bind", f"127.0.0.1:{port}", "app:app"]
    with launch(command, tmp_path, port) as server:
        for i in range(20):
            assert server.get(f"/users/{i}").status_code == 200
        for _ in range(4):  # scrapes land on either worker
            assert server.requests_total("/users/<int:user_id>") == 20
        lines = server.request_lines()
    assert {line["route"] for line in lines} == {"/users/<int:user_id>"}
    assert len(lines) == 20


def test_plain_wsgi_app_under_gunicorn_gets_the_wsgi_middleware(tmp_path: Path, port: int) -> None:
    """A framework-less WSGI callable served by `run -- gunicorn` is wrapped in the WSGI
    middleware (requests counted as <unmatched>, /metrics answered)."""
    app = """
        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"plain"]
    """
    write(tmp_path, {"app.py": app})
    command = [*LAUNCHER, "gunicorn", "--bind", f"127.0.0.1:{port}", "app:app"]
    with launch(command, tmp_path, port) as server:
        assert server.get("/anything").text == "plain"
        assert server.requests_total("<unmatched>") == 1


def test_django_runserver_gets_the_app_and_middleware(tmp_path: Path, port: int) -> None:
    """An unchanged Django project under `run -- python manage.py runserver --noreload` counts
    its request under the URL pattern and logs it."""
    write(tmp_path, DJANGO_PROJECT)
    command = [*LAUNCHER, "python", "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    with launch(command, tmp_path, port) as server:
        assert server.get("/users/5").text == "user 5"
        assert server.requests_total("/users/<int:user_id>") == 1
        lines = server.request_lines()
    assert [(line["route"], line["service"]) for line in lines] == [
        ("/users/<int:user_id>", "mysite")
    ]


def test_telemetry_instrument_python_app_running_uvicorn(tmp_path: Path, port: int) -> None:
    """The installed `telemetry-instrument python app.py` instruments an app that calls
    uvicorn.run in __main__."""
    write(
        tmp_path,
        {
            "app.py": STARLETTE_APP
            + """
    if __name__ == "__main__":
        import sys

        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False)
"""
        },
    )
    command = [str(VENV_BIN / "telemetry-instrument"), "python", "app.py", str(port)]
    with launch(command, tmp_path, port) as server:
        assert server.get("/users/1").status_code == 200
        assert server.requests_total("/users/{user_id}") == 1
        assert server.request_lines()[0]["route"] == "/users/{user_id}"


PROBE_APP = """
    import inspect

    import httpx
    import requests
    import wrapt
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route


    def wrapped(cls):
        return isinstance(inspect.getattr_static(cls, "send"), wrapt.FunctionWrapper)


    async def probe(request):
        return JSONResponse(
            {"httpx": wrapped(httpx.Client), "requests": wrapped(requests.Session)}
        )


    app = Starlette(routes=[Route("/probe", probe)])
"""


@pytest.mark.parametrize(
    ("disabled", "expected"),
    [("", {"httpx": True, "requests": True}), ("httpx", {"httpx": False, "requests": True})],
)
def test_disabled_instrumentation_is_not_applied(
    tmp_path: Path, port: int, disabled: str, expected: dict[str, bool]
) -> None:
    """TELEMETRY_DISABLED_INSTRUMENTATIONS=httpx leaves httpx unpatched and requests patched."""
    write(tmp_path, {"app.py": PROBE_APP})
    command = [*LAUNCHER, "uvicorn", "app:app", "--port", str(port), "--no-access-log"]
    env = {"TELEMETRY_DISABLED_INSTRUMENTATIONS": disabled}
    with launch(command, tmp_path, port, env=env) as server:
        assert server.get("/probe").json() == expected


def test_disabled_framework_gets_no_middleware(tmp_path: Path, port: int) -> None:
    """TELEMETRY_DISABLED_INSTRUMENTATIONS=starlette: the app serves, /metrics is the app's 404."""
    write(tmp_path, {"app.py": STARLETTE_APP})
    command = [*LAUNCHER, "uvicorn", "app:app", "--port", str(port), "--no-access-log"]
    env = {"TELEMETRY_DISABLED_INSTRUMENTATIONS": " Starlette ,redis"}
    with launch(command, tmp_path, port, env=env) as server:
        assert server.get("/users/2").status_code == 200
        assert server.get("/metrics").status_code == 404


def test_failure_inside_the_bootstrap_does_not_stop_the_app(tmp_path: Path, port: int) -> None:
    """An invalid configuration makes the instrumentation fail: it is logged, the app serves."""
    write(tmp_path, {"app.py": STARLETTE_APP, "bad.yaml": "service: [not, a, name]\n"})
    command = [*LAUNCHER, "uvicorn", "app:app", "--port", str(port), "--no-access-log"]
    env = {"TELEMETRY_CONFIG": str(tmp_path / "bad.yaml")}
    with launch(command, tmp_path, port, env=env) as server:
        assert server.get("/users/3").text == "user 3"
        assert server.get("/metrics").status_code == 404
        assert "telemetry-web launcher: starlette instrumentation failed" in server.text()


def test_uvicorn_workers_share_one_metrics_view(tmp_path: Path, port: int) -> None:
    """`run -- uvicorn --workers 2`: each spawned worker is instrumented and every scrape counts
    the requests of both."""
    write(tmp_path, {"app.py": STARLETTE_APP})
    command = [*LAUNCHER, "uvicorn", "app:app", "--workers", "2", "--port", str(port),
               "--no-access-log"]  # fmt: skip
    with launch(command, tmp_path, port) as server:
        for i in range(20):
            assert server.get(f"/users/{i}").status_code == 200
        for _ in range(4):
            assert server.requests_total("/users/{user_id}") == 20


def test_gunicorn_uvicorn_workers_instrument_the_asgi_app(tmp_path: Path, port: int) -> None:
    """`run -- gunicorn -k uvicorn.workers.UvicornWorker -w 2`: the Starlette app gets the ASGI
    middleware (not the WSGI one) and both workers' requests are counted."""
    write(tmp_path, {"app.py": STARLETTE_APP})
    command = [*LAUNCHER, "gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
               "--bind", f"127.0.0.1:{port}", "app:app"]  # fmt: skip
    with launch(command, tmp_path, port) as server:
        for i in range(10):
            assert server.get(f"/users/{i}").status_code == 200
        for _ in range(3):
            assert server.requests_total("/users/{user_id}") == 10


def test_app_instrumented_by_hand_is_not_instrumented_twice(tmp_path: Path, port: int) -> None:
    """A Starlette app that adds TelemetryMiddleware itself counts and logs each request once."""
    app = (
        STARLETTE_APP
        + """
    from telemetry_web import Telemetry, TelemetryMiddleware

    app.add_middleware(TelemetryMiddleware, telemetry=Telemetry(service="by-hand"))
"""
    )
    write(tmp_path, {"app.py": app})
    command = [*LAUNCHER, "uvicorn", "app:app", "--port", str(port), "--no-access-log"]
    with launch(command, tmp_path, port) as server:
        assert server.get("/users/9").status_code == 200
        assert server.requests_total("/users/{user_id}") == 1
        lines = server.request_lines()
    assert [line["service"] for line in lines] == ["by-hand"]


FAKE_INSTRUMENTOR = """
    import os


    class FakeInstrumentor:
        def __init__(self, telemetry):
            self.telemetry = telemetry

        def instrument(self):
            with open(os.environ["FAKE_MARKER"], "a") as marker:
                marker.write("instrumented for " + self.telemetry.settings.service + "\\n")
"""


@pytest.mark.parametrize("disabled", [False, True], ids=["applied", "disabled"])
def test_third_party_instrumentors_register_through_the_entry_point_group(
    tmp_path: Path, port: int, disabled: bool
) -> None:
    """A distribution declaring a `telemetry_web.instrumentors` entry point is instrumented
    with the process Telemetry under the launcher, unless disabled by its entry-point name."""
    marker = tmp_path / "marker.txt"
    write(tmp_path, {"app.py": STARLETTE_APP, "fakeinst.py": FAKE_INSTRUMENTOR})
    dist = tmp_path / "fakeinst-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeinst\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[telemetry_web.instrumentors]\nfake = fakeinst:FakeInstrumentor\n"
    )
    env = {"FAKE_MARKER": str(marker), "OTEL_SERVICE_NAME": "entry-points"}
    if disabled:
        env["TELEMETRY_DISABLED_INSTRUMENTATIONS"] = "fake"
    command = [*LAUNCHER, "uvicorn", "app:app", "--port", str(port), "--no-access-log"]
    with launch(command, tmp_path, port, env=env) as server:
        assert server.get("/users/1").status_code == 200
    if disabled:
        assert not marker.exists()
    else:
        assert marker.read_text() == "instrumented for entry-points\n"


@pytest.mark.parametrize(
    "server_args",
    [
        ["python", "-m", "flask", "--app", "app", "run", "--port", "{port}"],
        ["gunicorn", "--preload", "-w", "2", "--bind", "127.0.0.1:{port}", "app:app"],
    ],
    ids=["flask-run", "gunicorn-preload"],
)
def test_flask_under_flask_run_and_gunicorn_preload(
    tmp_path: Path, port: int, server_args: list[str]
) -> None:
    """The unchanged Flask app under `run -- flask run` and `run -- gunicorn --preload -w 2`
    (the app imported once in the master, then forked): every request counted once."""
    write(tmp_path, {"app.py": FLASK_APP})
    command = [*LAUNCHER, *(a.replace("{port}", str(port)) for a in server_args)]
    with launch(command, tmp_path, port) as server:
        for i in range(10):
            assert server.get(f"/users/{i}").status_code == 200
        for _ in range(3):
            assert server.requests_total("/users/<int:user_id>") == 10


def test_starlette_under_uvicorn_reload(tmp_path: Path, port: int) -> None:
    """`run -- uvicorn --reload` (the app served by a spawned reloader child) is instrumented
    once: requests counted under the route template."""
    write(tmp_path, {"app.py": STARLETTE_APP})
    command = [*LAUNCHER, "uvicorn", "app:app", "--reload", "--port", str(port),
               "--no-access-log"]  # fmt: skip
    with launch(command, tmp_path, port) as server:
        for i in range(5):
            assert server.get(f"/users/{i}").status_code == 200
        assert server.requests_total("/users/{user_id}") == 5
