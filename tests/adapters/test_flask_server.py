"""The Flask sample app under real servers: gunicorn (2 gthread workers) and ``flask run``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .._metrics import Scrape
from .._net import free_port
from ._wsgi_support import (
    UNMATCHED,
    Server,
    gunicorn_argv,
    request_lines,
    start_server,
)

pytestmark = pytest.mark.server

SAMPLE = "sample_apps.flask_app"
USER_RULE = "/api/users/<int:user_id>"

# (method, path, expected status, expected route label), each sent ROUNDS times.
PLAN = [
    ("GET", "/api/users", 200, "/api/users"),
    ("GET", "/api/users/1", 200, USER_RULE),
    ("GET", "/api/users/999", 404, USER_RULE),
    ("GET", "/api/fail", 500, "/api/fail"),
    ("GET", "/api/stream", 200, "/api/stream"),
    ("POST", "/api/orders", 201, "/api/orders"),
    ("GET", "/no/such/page", 404, UNMATCHED),
    ("DELETE", "/api/users", 405, "/api/users"),  # a 405 keeps its rule, as everywhere
]
ROUNDS = 5


@pytest.fixture
def gunicorn_sample(tmp_path: Path) -> Iterator[Server]:
    """``gunicorn -w 2 -k gthread --threads 4 sample_apps.flask_app:app`` on a loopback port."""
    port = free_port()
    server = start_server(
        gunicorn_argv(f"{SAMPLE}:app", port, workers=2, threads=4), port, tmp_path
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def flask_run_sample(tmp_path: Path) -> Iterator[Server]:
    """``python -m flask --app sample_apps.flask_app run`` (werkzeug's threaded server)."""
    port = free_port()
    argv = [sys.executable, "-m", "flask", "--app", SAMPLE, "run", "--port", str(port)]
    server = start_server(argv, port, tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _send_plan(base_url: str, *, workers: int) -> list[tuple[str, str, httpx.Response]]:
    """Every plan entry ROUNDS times from ``workers`` threads; some bring their own request id."""
    jobs = [(i, entry) for i, entry in enumerate(PLAN * ROUNDS)]
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(base_url=base_url, timeout=10.0, limits=limits) as client:

        def one(job: tuple[int, tuple[str, str, int, str]]) -> tuple[str, str, httpx.Response]:
            i, (method, path, status, _route) = job
            headers = {"X-Request-ID": f"client-{i}"} if i % 3 == 0 else {}
            body = {"user_id": i, "items": [1, 2]} if method == "POST" else None
            response = client.request(method, path, headers=headers, json=body)
            assert response.status_code == status, (method, path, response.text)
            if i % 3 == 0:
                assert response.headers["x-request-id"] == f"client-{i}"
            return method, path, response

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, jobs))


def _check_log_lines(server: Server, sent: list[tuple[str, str, httpx.Response]]) -> None:
    """Every response's request id is in exactly one request line, with that request's path
    and method; the order endpoint's own lines carry the same request and trace ids."""
    ids = [response.headers["x-request-id"] for _, _, response in sent]
    assert len(set(ids)) == len(ids)

    def complete(lines: list[dict[str, Any]]) -> bool:
        return len(request_lines(lines)) >= len(sent)

    lines = server.wait_for_lines(complete)
    requests = request_lines(lines)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in requests:
        by_id.setdefault(line["request_id"], []).append(line)
    for method, path, response in sent:
        (line,) = by_id[response.headers["x-request-id"]]
        assert (line["method"], line["path"], line["status"]) == (
            method, path, response.status_code,
        )  # fmt: skip
        assert line["service"] == "sample-flask"
        assert line["level"] == ("error" if response.status_code >= 500 else
                                 "warning" if response.status_code >= 400 else "info")  # fmt: skip
        if path == "/api/fail":
            assert line["exception"]["type"] == "RuntimeError"
        if path == "/api/orders":
            inner = [e for e in lines if e.get("request_id") == line["request_id"] and
                     e.get("event") in ("Processing order", "stock is low for sku-42")]  # fmt: skip
            assert len(inner) == 2
            assert {e["trace_id"] for e in inner} == {line["trace_id"]}
    routes = {(line["path"], line["route"]) for line in requests}
    assert routes == {(path, route) for _m, path, _s, route in PLAN}


def test_gunicorn_gthread_workers_keep_requests_apart(gunicorn_sample: Server) -> None:
    """Under gunicorn with 2 workers x 4 threads, concurrent requests get the expected statuses,
    distinct request ids and exactly one request line each; every scrape parses."""
    sent = _send_plan(gunicorn_sample.base_url, workers=8)
    _check_log_lines(gunicorn_sample, sent)
    with httpx.Client(base_url=gunicorn_sample.base_url, timeout=10.0) as client:
        for _ in range(2):  # each scrape reaches one worker: its own counts only
            response = client.get("/metrics")
            assert response.status_code == 200
            metrics = Scrape.parse(response.text)
            # A worker may have served none of them (keep-alive connections stick to one).
            assert metrics.total("http_requests_total") <= len(sent)
            assert metrics.total("telemetry_log_events_dropped_total") == 0
            for labels in metrics.label_sets("http_requests_total"):
                assert labels["service"] == "sample-flask"
                assert (labels["method"], labels["route"], int(labels["status"])) in {
                    (m, r, s) for m, _p, s, r in PLAN
                }
        assert client.get("/health").status_code == 200
        assert client.get("/ready").json()["status"] == "ready"


def test_flask_run_serves_the_sample_app(flask_run_sample: Server) -> None:
    """``flask run`` (threaded dev server): statuses, ids and request lines as under gunicorn,
    and exact counts in /metrics (one process)."""
    sent = _send_plan(flask_run_sample.base_url, workers=4)
    _check_log_lines(flask_run_sample, sent)
    with httpx.Client(base_url=flask_run_sample.base_url, timeout=10.0) as client:
        metrics = Scrape.parse(client.get("/metrics").text)
    base = {"service": "sample-flask", "environment": "development"}
    expected: dict[tuple[str, str, str], int] = {}
    for method, _path, status, route in PLAN:
        key = (method, route, str(status))
        expected[key] = expected.get(key, 0) + ROUNDS
    for (method_label, route_label, status_label), count in expected.items():
        series = {**base, "method": method_label, "route": route_label, "status": status_label}
        assert metrics.value("http_requests_total", **series) == count
    assert metrics.total("http_requests_total") == len(sent)
