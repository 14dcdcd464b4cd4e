"""The sample project under real servers: gunicorn (WSGI) and uvicorn (ASGI), over loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..._logs import json_lines
from ..._metrics import Scrape
from ..._net import free_port, wait_for_port
from ..._waiting import poll
from ._support import UNMATCHED

REPO = Path(__file__).resolve().parents[3]
SETTINGS = "sample_apps.django_project.settings"
SERVERS = {
    "gunicorn": ["-m", "gunicorn", "-w", "1", "--bind", "127.0.0.1:{port}",
                 "sample_apps.django_project.wsgi"],
    "uvicorn": ["-m", "uvicorn", "sample_apps.django_project.asgi:application",
                "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"],
}  # fmt: skip
# (method, path, route label, status, times sent)
PLAN = [
    ("GET", "/api/users", "/api/users", 200, 2),
    ("GET", "/api/users/1", "/api/users/<int:user_id>", 200, 3),
    ("GET", "/api/users/999", "/api/users/<int:user_id>", 404, 1),
    ("GET", "/api/fail", "/api/fail", 500, 1),
    ("GET", "/api/stream", "/api/stream", 200, 1),
    ("GET", "/api/slow", "/api/slow", 200, 2),
    ("POST", "/api/orders", "/api/orders", 201, 1),
    ("GET", "/nowhere", UNMATCHED, 404, 2),
]
STREAM_SLEEPS_MS = 5 * 10  # sample_apps/django_project/api/views.py: 5 chunks, 10 ms before each


class Served:
    """A server process on a loopback port; its stdout (JSON log lines) goes to a file."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stdout = tmp_path / f"{name}.out"
        self.stderr = tmp_path / f"{name}.err"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TELEMETRY_", "OTEL_", "PROMETHEUS_MULTIPROC"))}  # fmt: skip
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
        env["DJANGO_SETTINGS_MODULE"] = SETTINGS
        # The server's local store in the test's directory, not in the repository's.
        env["TELEMETRY_STORE__PATH"] = str(tmp_path / ".telemetry" / "telemetry.db")
        args = [a.format(port=self.port) for a in SERVERS[name]]
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, *args], cwd=REPO, env=env, stdout=out, stderr=err
            )

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()

    def log_lines(self) -> list[dict[str, Any]]:
        return json_lines(self.stdout.read_text())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(params=sorted(SERVERS))
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """The sample project under gunicorn (-w 1) or uvicorn, stopped after the test."""
    server = Served(request.param, tmp_path)
    try:
        wait_for_port(server.port, server.process, output=server.output)
        yield server
    finally:
        server.stop()


def _wait_for_request_lines(server: Served, count: int) -> list[dict[str, Any]]:
    """The request log lines, once ``count`` of them are written (a thread writes them)."""
    return poll(
        lambda: [e for e in server.log_lines() if e.get("logger") == "telemetry_web.request"],
        lambda lines: len(lines) >= count,
        10.0,
    )


@pytest.mark.server
def test_sample_project_under_a_real_server(served: Served) -> None:
    """Over real sockets: exact counts per route and status, ids echoed, streams timed whole."""
    ids: dict[str, str] = {}
    with httpx.Client(base_url=served.base_url, timeout=10.0) as client:
        for method, path, _route, status, times in PLAN:
            for n in range(times):
                request_id = f"{method.lower()}{path.replace('/', '.')}-{n}"
                body = {"user_id": 7, "items": [1, 2]} if method == "POST" else None
                response = client.request(
                    method, path, json=body, headers={"X-Request-ID": request_id}
                )
                assert response.status_code == status, (path, response.text)
                assert response.headers["x-request-id"] == request_id
                ids[path] = request_id
                if path == "/api/stream":
                    assert response.text == "0\n1\n2\n3\n4\n"
        assert client.get("/health").status_code == 200
        assert client.get("/ready").json()["status"] == "ready"
        assert client.head("/metrics").status_code == 200
        metrics = Scrape.parse(client.get("/metrics").text)

    expected = {(m, route, str(status)): float(times) for m, _p, route, status, times in PLAN}
    base = {"service": "sample-django"}
    counted = {
        (lbl["method"], lbl["route"], lbl["status"]): value
        for lbl, value in metrics.series("http_requests_total")
        if all(lbl.get(k) == v for k, v in base.items())
    }
    assert counted == expected
    assert metrics.counts("http_request_duration_seconds_count") == expected
    assert all(v == 0 for _, v in metrics.series("http_requests_in_progress"))

    lines = _wait_for_request_lines(served, sum(p[4] for p in PLAN))
    assert len(lines) == sum(p[4] for p in PLAN), served.output()
    (stream_line,) = [e for e in lines if e["path"] == "/api/stream"]
    assert stream_line["duration_ms"] >= STREAM_SLEEPS_MS
    assert stream_line["request_id"] == ids["/api/stream"]
    (fail_line,) = [e for e in lines if e["path"] == "/api/fail"]
    assert fail_line["level"] == "error"
    assert fail_line["exception"]["type"] == "RuntimeError"
    order_events = [e for e in served.log_lines() if e.get("request_id") == ids["/api/orders"]]
    assert {e["event"] for e in order_events} >= {"Processing order", "stock is low for sku-42"}
    assert len({e["trace_id"] for e in order_events}) == 1
    assert "Failed to detach context" not in served.output()
