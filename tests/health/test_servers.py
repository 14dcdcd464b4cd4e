"""Real servers: gunicorn prefork (a runner per worker process; with ``--preload`` started
again in each forked worker) and uvicorn (the lifespan starts the runner on the server's loop)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .._net import free_port
from .._waiting import wait_until
from ..servers.conftest import serve

pytestmark = pytest.mark.server


def recorded(pids_file: Path) -> set[int]:
    """The processes that have run the check so far."""
    return {int(p) for p in pids_file.read_text().split()} if pids_file.exists() else set()


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("preload", [False, True], ids=["per-worker", "preload"])
def test_gunicorn_workers_each_run_their_checks(tmp_path: Path, preload: bool) -> None:
    """gunicorn -w 2: each worker runs the check in its own process and answers /ready from
    its own results; with --preload the runner restarts in each forked worker."""
    port, pids = free_port(), tmp_path / "pids"
    args = ["gunicorn", "-w", "2", "--bind", f"127.0.0.1:{port}",
            *(["--preload"] if preload else []), "tests.health._served_apps:wsgi_app"]  # fmt: skip
    with serve(args, port, env={"HEALTH_TEST_PIDS": str(pids)}):
        # two workers, plus the master that imported the app with --preload
        wait_until(lambda: len(recorded(pids)) >= (3 if preload else 2), 30.0)
        # A worker records its pid when its first run starts; /ready follows when it ends.
        wait_until(lambda: all(get(port, "/ready")[0] == 200 for _ in range(6)), 30.0)
        for _ in range(10):
            status, body = get(port, "/ready")
            assert status == 200
            assert body["checks"]["recorder"]["status"] == "healthy"


def test_uvicorn_lifespan_runs_the_checks(tmp_path: Path) -> None:
    """uvicorn: the lifespan starts the runner in the server's process; /ready turns 200."""
    port, pids = free_port(), tmp_path / "pids"
    args = ["uvicorn", "--port", str(port), "tests.health._served_apps:asgi_app"]
    with serve(args, port, env={"HEALTH_TEST_PIDS": str(pids)}):
        wait_until(lambda: len(recorded(pids)) >= 1, 30.0)
        wait_until(lambda: get(port, "/ready")[0] == 200, 30.0)
        assert get(port, "/health")[1]["status"] == "ok"
    assert len(recorded(pids)) == 1
