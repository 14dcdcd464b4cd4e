"""The sample app under uvicorn writes the store; the installed `telemetry` script reads it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .._net import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "telemetry"


def _telemetry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.server
def test_uvicorn_run_then_cli_commands(tmp_path: Path) -> None:
    """Traffic to the Starlette sample (with /api/fail) is searchable, shown with its exception
    and log line, summarised, tailed by trace id, and its /metrics listed."""
    db = tmp_path / "store" / "telemetry.db"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "TELEMETRY_LOGGING__SINKS__CONSOLE": "false",
        "TELEMETRY_STORE__PATH": str(db),
        "TELEMETRY_TRACING__BATCH__SCHEDULE_DELAY": "0.1s",
    }
    output = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "sample_apps.starlette_app:app", "--port", str(port),
         "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/health", server, output=(tmp_path / "server.log").read_text)
        for path in ("/api/users", "/api/users/1", "/api/users/9", "/api/fail", "/api/stream"):
            httpx.get(base + path, timeout=5)
        httpx.post(base + "/api/orders", json={"user_id": 2, "items": [1]}, timeout=5)
        found: list[dict[str, object]] = []
        deadline = time.monotonic() + 15
        while not found and time.monotonic() < deadline:
            time.sleep(0.3)
            if db.exists():
                result = _telemetry("traces", "search", "--status", "error", "--json", env=env)
                if result.returncode == 0:
                    found = json.loads(result.stdout)
        assert found, "no failed trace reached the store"
        trace_id = str(found[0]["trace_id"])
        assert found[0]["route"] == "/api/fail"

        shown = _telemetry("traces", "show", trace_id, env=env)
        assert shown.returncode == 0, shown.stderr
        assert "GET /api/fail" in shown.stdout
        assert "RuntimeError: the sample endpoint that always fails" in shown.stdout
        assert "request" in shown.stdout  # the request's log line, interleaved

        stats = _telemetry("traces", "stats", "--json", env=env)
        routes = {r["route"] for r in json.loads(stats.stdout)}
        assert {"/api/users", "/api/fail", "/api/orders"} <= routes

        tail = _telemetry("logs", "tail", "--trace-id", trace_id, "--json", env=env)
        assert tail.returncode == 0, tail.stderr
        events = [json.loads(line) for line in tail.stdout.splitlines()]
        assert any(e["event"] == "request" and e["fields"]["status"] == 500 for e in events)

        listed = _telemetry("metrics", "list", "--url", base + "/metrics", "--json", env=env)
        names = {m["name"] for m in json.loads(listed.stdout)}
        assert {"http_requests_total", "http_request_duration_seconds"} <= names
        assert not [name for name in names if name.endswith("_created")]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
        output.close()
