"""What a new user sees under `telemetry run`: each standard `logging` line printed once (issue 11).

Before, werkzeug's access line under `flask run` was printed twice: plain by the handler
werkzeug adds to its own logger, and as JSON by the pipeline's bridge on the root logger. The
same held for any line reaching a `logging.basicConfig` root handler. uvicorn's and gunicorn's
own loggers do not propagate to the root: they keep printing their lines, once, themselves.
The servers' access lines are the launcher's (see test_access_logs.py): by default dropped, as
the request line covers them; with `server_access_log: json`, one JSON line each.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from .conftest import LAUNCHER, Server, launch, write

pytestmark = pytest.mark.server

FLASK_APP = """
    import logging

    from flask import Flask

    app = Flask(__name__)
    log = logging.getLogger("orders")


    @app.get("/users/<int:user_id>")
    def user(user_id):
        log.warning("loading user %s", user_id)
        return f"user {user_id}"
"""

STARLETTE_APP = """
    import logging

    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    logging.basicConfig(level=logging.INFO)  # a root handler printing plain lines to stderr
    log = logging.getLogger("orders")


    async def user(request):
        log.info("loading user %s", request.path_params["user_id"])
        log.debug("below the level basicConfig set")
        return PlainTextResponse("user " + request.path_params["user_id"])


    app = Starlette(routes=[Route("/users/{user_id}", user)])
"""

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_VARYING = [
    (re.compile(r"\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\]"), "[DATE]"),  # werkzeug's access time
    (re.compile(r"127\.0\.0\.1:\d+ -"), "127.0.0.1:CLIENT -"),  # uvicorn's client port
    (re.compile(r"process \[\d+\]"), "process [PID]"),
]


def shown(server: Server) -> list[str]:
    """Every line the user saw, JSON lines as ``logger level: event``, varying parts replaced."""
    lines = []
    for line in server.text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            line = f"JSON {event['logger']} {event['level']}: {event['event']}"
        line = _ANSI.sub("", line)
        line = line.replace(f"127.0.0.1:{server.port}", "127.0.0.1:PORT")
        for pattern, replacement in _VARYING:
            line = pattern.sub(replacement, line)
        lines.append(line)
    return lines


def test_flask_run_prints_each_werkzeug_line_once(tmp_path: Path, port: int) -> None:
    """`run -- flask run` with `server_access_log: json`: werkzeug's start-up lines print once
    (plain, before any request), each access line once as JSON (no colour codes), the app's
    own line once."""
    write(tmp_path, {"app.py": FLASK_APP})
    command = [*LAUNCHER, "python", "-m", "flask", "--app", "app", "run", "--port", str(port)]
    env = {"TELEMETRY_LOGGING__SERVER_ACCESS_LOG": "json"}
    with launch(command, tmp_path, port, env=env) as server:
        assert server.get("/users/3").status_code == 200
        assert server.get("/nope").status_code == 404
        assert len(server.request_lines(count=2)) == 2
        # werkzeug logs its access line after the response, so after our request line.
        deadline = time.monotonic() + 10
        while sum("JSON werkzeug" in line for line in shown(server)) < 2:
            assert time.monotonic() < deadline, "\n".join(shown(server))
            time.sleep(0.1)
    lines = shown(server)
    assert lines.count(" * Running on http://127.0.0.1:PORT") == 1
    requests = lines[lines.index("Press CTRL+C to quit") + 1 :]
    assert sorted(requests) == sorted(
        [
            "JSON orders warning: loading user 3",
            'JSON werkzeug info: 127.0.0.1 - - [DATE] "GET /users/3 HTTP/1.1" 200 -',
            "JSON telemetry_web.request info: request",
            'JSON werkzeug info: 127.0.0.1 - - [DATE] "GET /nope HTTP/1.1" 404 -',
            "JSON telemetry_web.request warning: request",
        ]
    )


def test_uvicorn_keeps_its_own_lines_and_prints_basic_config_lines_once(
    tmp_path: Path, port: int
) -> None:
    """`run -- uvicorn` with an app that calls `logging.basicConfig`: uvicorn's start-up and
    shutdown lines print once through uvicorn's handlers (its access line is dropped: the
    request line covers it); the app's line once, as JSON (not again through the root handler);
    the level basicConfig set still filters."""
    write(tmp_path, {"app.py": STARLETTE_APP})
    command = [*LAUNCHER, "uvicorn", "app:app", "--port", str(port)]
    with launch(command, tmp_path, port) as server:
        assert server.get("/users/3").status_code == 200
        assert len(server.request_lines()) == 1
    lines = shown(server)
    assert sorted(lines) == sorted(
        [
            "INFO:     Started server process [PID]",
            "INFO:     Waiting for application startup.",
            "INFO:     Application startup complete.",
            "INFO:     Uvicorn running on http://127.0.0.1:PORT (Press CTRL+C to quit)",
            "JSON orders info: loading user 3",
            "JSON telemetry_web.request info: request",
            "INFO:     Shutting down",
            "INFO:     Waiting for application shutdown.",
            "INFO:     Application shutdown complete.",
            "INFO:     Finished server process [PID]",
        ]
    )
