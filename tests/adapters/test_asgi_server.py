"""The middleware under a real uvicorn process: counts over the wire, promtool-valid /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .._metrics import Scrape
from .._net import free_port, wait_for_port
from ..conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
SAMPLE_APP = REPO / "sample_apps" / "starlette_app" / "__init__.py"
OWN_APP = "tests.adapters._apps:app"
SAMPLE = "sample_apps.starlette_app:app"
UNMATCHED = "<unmatched>"

# Per app: (path, expected route label, expected status, times sent).
PLANS = {
    SAMPLE: [
        ("/api/users/1", "/api/users/{user_id:int}", 200, 3),
        ("/api/users/999", "/api/users/{user_id:int}", 404, 1),
        ("/api/users", "/api/users", 200, 2),
        ("/api/fail", "/api/fail", 500, 1),
        ("/__adapters_probe__", UNMATCHED, 404, 4),
    ],
    OWN_APP: [
        ("/api/users/1", "/api/users/{user_id}", 200, 3),
        ("/__adapters_probe__", UNMATCHED, 404, 4),
    ],
}


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, app spec) of a uvicorn subprocess on a free loopback port, stopped afterwards."""
    spec = SAMPLE if SAMPLE_APP.exists() else OWN_APP
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["TELEMETRY_STORE__PATH"] = str(tmp_path / ".telemetry" / "telemetry.db")  # not the repo's
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", spec, "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, process, output=log.read_text)
        yield f"http://127.0.0.1:{port}", spec
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _series(scrape: Scrape, name: str, **wanted: str) -> list[float]:
    return [
        s.value for s in scrape.named(name) if all(s.labels.get(k) == v for k, v in wanted.items())
    ]


@pytest.mark.server
def test_real_server_counts_and_promtool(served_app: tuple[str, str]) -> None:
    """Requests over real sockets are counted exactly; /metrics passes `promtool check metrics`."""
    base_url, spec = served_app
    plan = PLANS[spec]
    # A fresh connection per request: uvicorn closes a connection whose app raised (the 500).
    no_keepalive = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base_url, timeout=10.0, limits=no_keepalive) as client:
        for path, _route, status, times in plan:
            for _ in range(times):
                response = client.get(path)
                assert response.status_code == status, (path, response.text)
                assert response.headers.get("x-request-id")
        assert client.get("/health").status_code == 200
        assert client.get("/ready").json()["status"] == "ready"
        metrics_response = client.get("/metrics")
    assert metrics_response.status_code == 200
    body = metrics_response.text
    metrics = Scrape.parse(body)

    expected: dict[tuple[str, str], float] = {}
    for _path, route, status, times in plan:
        key = (route, str(status))
        expected[key] = expected.get(key, 0) + times
    counted = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in metrics.named("http_requests_total")
    }
    assert counted == expected
    for (route_label, status_label), total in expected.items():
        series = {"method": "GET", "route": route_label, "status": status_label}
        assert _series(metrics, "http_request_duration_seconds_count", **series) == [total]
    assert all(v == 0 for v in _series(metrics, "http_requests_in_progress"))

    promtool = require_tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body.encode(), capture_output=True, timeout=60
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
