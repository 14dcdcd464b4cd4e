"""The WSGI middleware under real threaded servers: werkzeug's in-process, gunicorn gthread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from telemetry_web.testing import CapturedTelemetry
from telemetry_web.wsgi import TelemetryWSGIMiddleware

from .._metrics import Scrape
from .._net import free_port
from ._wsgi_support import (
    FILE_BODY,
    RawApp,
    Server,
    capture,
    gunicorn_argv,
    labels,
    request_lines,
    start_server,
)

pytestmark = pytest.mark.server

REQUESTS = 64


@pytest.fixture
def captured() -> Iterator[CapturedTelemetry]:
    """A Telemetry recording into memory, shut down after the test."""
    capture_ = capture()
    yield capture_
    capture_.close()


@pytest.fixture
def threaded_server(captured: CapturedTelemetry) -> Iterator[str]:
    """werkzeug's threaded dev server in this process, serving the raw app; its base URL."""
    app = TelemetryWSGIMiddleware(
        RawApp(captured.telemetry), telemetry=captured.telemetry, route_resolver=RawApp.resolve
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _send_concurrently(base_url: str, count: int) -> list[tuple[int, httpx.Response]]:
    """``count`` requests to /work/<n> from 16 threads; even ones bring their own request id."""

    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    with httpx.Client(base_url=base_url, timeout=10.0, limits=limits) as client:

        def one(n: int) -> tuple[int, httpx.Response]:
            headers = {"X-Request-ID": f"client-{n}"} if n % 2 == 0 else {}
            return n, client.get(f"/work/{n}", headers=headers)

        with ThreadPoolExecutor(max_workers=16) as pool:
            return list(pool.map(one, range(count)))


def test_concurrent_requests_never_mix_ids(
    captured: CapturedTelemetry, threaded_server: str
) -> None:
    """Under a threaded server every request keeps its own trace id, request id and labels,
    in its span, its request line and the lines its handler logs."""
    results = _send_concurrently(threaded_server, REQUESTS)
    ids = {}
    for n, response in results:
        assert response.status_code == 200
        assert response.text == f"done:{n}"
        request_id = response.headers["x-request-id"]
        if n % 2 == 0:
            assert request_id == f"client-{n}"
        ids[n] = request_id
    assert len(set(ids.values())) == REQUESTS

    spans = {(s.attributes or {})["http.request.header.x-request-id"]: s for s in captured.spans()}
    assert set(spans) == set(ids.values())
    events = captured.logs()
    lines = {line["request_id"]: line for line in request_lines(events)}
    assert len(request_lines(events)) == REQUESTS
    working = {e["n"]: e for e in events if e.get("event") == "working"}
    stdlib = {e["event"].rsplit(" ", 1)[-1]: e for e in events if e.get("logger") == "work.stdlib"}
    for n, request_id in ids.items():
        span = spans[request_id]
        trace_id = format(span.context.trace_id, "032x")
        assert (span.attributes or {})["url.path"] == f"/work/{n}"
        line = lines[request_id]
        assert (line["path"], line["trace_id"], line["route"]) == (
            f"/work/{n}",
            trace_id,
            "/work/{n}",
        )
        for inner in (working[str(n)], stdlib[str(n)]):
            assert (inner["request_id"], inner["trace_id"]) == (request_id, trace_id)
    assert captured.sample("http_requests_total", **_labels_without_constants()) == REQUESTS
    assert captured.sample("http_requests_in_progress", method="GET", route="/work/{n}") == 0


def _labels_without_constants() -> dict[str, str]:
    full = labels("GET", "/work/{n}", 200)
    return {k: v for k, v in full.items() if k in ("method", "route", "status")}


@pytest.fixture
def gunicorn_raw(tmp_path: Path) -> Iterator[Server]:
    """The raw app under ``gunicorn -w 1 -k gthread --threads 8`` (a real wsgi.file_wrapper)."""
    port = free_port()
    server = start_server(
        gunicorn_argv("tests.adapters._wsgi_support:served_app()", port, workers=1, threads=8),
        port,
        tmp_path,
    )
    try:
        yield server
    finally:
        server.stop()


def test_gunicorn_file_wrapper_and_concurrency(gunicorn_raw: Server) -> None:
    """Under gunicorn, a raw file_wrapper and werkzeug's send_file serve the whole file, and
    concurrent requests are counted exactly with one request line each."""
    with httpx.Client(base_url=gunicorn_raw.base_url, timeout=10.0) as client:
        for path in ("/file", "/send-file"):
            response = client.get(path)
            assert response.status_code == 200
            assert response.content == FILE_BODY
            assert response.headers["x-request-id"]
    results = _send_concurrently(gunicorn_raw.base_url, 32)
    ids = {n: response.headers["x-request-id"] for n, response in results}
    assert all(response.status_code == 200 for _, response in results)
    assert len(set(ids.values())) == 32

    def complete(lines: list[dict[str, Any]]) -> bool:
        return len(request_lines(lines)) >= 34

    lines = request_lines(gunicorn_raw.wait_for_lines(complete))
    by_id = {line["request_id"]: line for line in lines}
    assert len(lines) == 34
    for n, request_id in ids.items():
        assert by_id[request_id]["path"] == f"/work/{n}"
    with httpx.Client(base_url=gunicorn_raw.base_url, timeout=10.0) as client:
        metrics = Scrape.parse(client.get("/metrics").text)
    base = {"service": "wsgi-served", "environment": "test"}
    for path in ("/file", "/send-file"):
        series = {**base, "method": "GET", "route": path, "status": "200"}
        assert metrics.value("http_requests_total", **series) == 1
        assert metrics.value("http_response_size_bytes_sum", **series) == len(FILE_BODY)
    work = {**base, "method": "GET", "route": "/work/{n}", "status": "200"}
    assert metrics.value("http_requests_total", **work) == 32
