"""The servers' own access lines under `telemetry run` (issue 12): uvicorn, gunicorn, hypercorn,
werkzeug (`flask run`) and Django's runserver print them with the raw query string. The
launcher drops them by default (the JSON request line covers each request) or, with
`logging.server_access_log: json`, sends each once through the pipeline with query secrets
redacted. Real servers on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from .._logs import json_lines
from .conftest import DJANGO_PROJECT, LAUNCHER, Server, launch, write

pytestmark = pytest.mark.server

SECRET = "s3cr3t-t0ken-value"
QUERY = f"?token={SECRET}&page=2"

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

SERVERS = {
    "uvicorn": ("uvicorn.access", STARLETTE_APP,
                ["uvicorn", "app:app", "--port", "{port}"]),
    "gunicorn": ("gunicorn.access", FLASK_APP,
                 ["gunicorn", "--access-logfile", "-", "--bind", "127.0.0.1:{port}", "app:app"]),
    "hypercorn": ("hypercorn.access", STARLETTE_APP,
                  ["hypercorn", "--access-logfile", "-", "--bind", "127.0.0.1:{port}",
                   "app:app"]),
    "flask-run": ("werkzeug", FLASK_APP,
                  ["python", "-m", "flask", "--app", "app", "run", "--port", "{port}"]),
}  # fmt: skip


def logged_by(server: Server, logger: str) -> list[dict[str, object]]:
    return [event for event in json_lines(server.text()) if event.get("logger") == logger]


def serve(tmp_path: Path, port: int, server_name: str, mode: str | None) -> Server:
    _, source, args = SERVERS[server_name]
    write(tmp_path, {"app.py": source})
    env = {"TELEMETRY_LOGGING__SERVER_ACCESS_LOG": mode} if mode else {}
    command = [*LAUNCHER, *(arg.replace("{port}", str(port)) for arg in args)]
    with launch(command, tmp_path, port, env=env) as server:
        assert server.get(f"/users/7{QUERY}").status_code == 200
        assert len(server.request_lines()) == 1
    return server


@pytest.mark.parametrize("server_name", list(SERVERS))
def test_access_line_is_dropped_by_default(tmp_path: Path, port: int, server_name: str) -> None:
    """By default the server's access line is gone (plain or JSON), the JSON request line is
    there, and the secret in the query string is printed nowhere."""
    server = serve(tmp_path, port, server_name, None)
    text = server.text()
    assert SECRET not in text
    assert "GET /users/7" not in text  # every access line format carries this
    assert logged_by(server, SERVERS[server_name][0]) == []
    assert [line["path"] for line in logged_by(server, "telemetry_web.request")] == ["/users/7"]


@pytest.mark.parametrize("server_name", list(SERVERS))
def test_access_line_as_one_redacted_json_line(tmp_path: Path, port: int, server_name: str) -> None:
    """With `server_access_log: json` each access line is printed once, as JSON from the
    server's access logger, with the token's value redacted and the rest of the query kept
    (hypercorn's default format prints no query string)."""
    server = serve(tmp_path, port, server_name, "json")
    text = server.text()
    assert SECRET not in text
    lines = logged_by(server, SERVERS[server_name][0])
    assert len(lines) == 1
    event = str(lines[0]["event"])
    # hypercorn's default format leaves the query string out: only the path is there.
    expected = "/users/7 " if server_name == "hypercorn" else "/users/7?token=REDACTED&page=2"
    assert expected in event
    assert sum("GET /users/7" in line for line in text.splitlines()) == 1


def test_django_runserver_request_line_is_taken_over(tmp_path: Path, port: int) -> None:
    """`manage.py runserver` prints its own request line through `django.server`: dropped by
    default, like the servers'."""
    write(tmp_path, DJANGO_PROJECT)
    command = [*LAUNCHER, "python", "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    with launch(command, tmp_path, port) as server:
        assert server.get(f"/users/5{QUERY}").status_code == 200
        assert len(server.request_lines()) == 1
    assert SECRET not in server.text()
    assert "GET /users/5" not in server.text()
