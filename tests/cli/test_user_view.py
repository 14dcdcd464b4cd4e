"""What a new user reads from the CLI (issue 11): unmatched requests under `<unmatched>`, log
lines in time order, metric names as Prometheus queries them. Exact output, on stores written
with fixed times and durations."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.cli import main
from telemetry_web.store import SQLiteStore, TracingManager
from telemetry_web.store._writers import log_row, span_row

T0 = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI prints local times: make them UTC for exact output."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout


def server_span(
    n: int, *, route: str | None, status: int, start: float, ms: float, legacy: bool = False
) -> tuple[Any, ...]:
    """The store row of a server span as the lifecycle ends it (no `http.route` when no route
    matched); ``legacy``: as written before the store kept `<unmatched>` (route NULL)."""
    attributes: dict[str, Any] = {"http.request.method": "GET", "http.response.status_code": status}
    if route is not None:
        attributes["http.route"] = route
    span = ReadableSpan(
        name=f"GET {route}" if route else "GET",
        context=SpanContext(n, n, is_remote=False, trace_flags=TraceFlags(1)),
        resource=Resource({"service.name": "shop"}),
        attributes=attributes,
        kind=SpanKind.SERVER,
        status=Status(StatusCode.ERROR if status >= 500 else StatusCode.UNSET),
        start_time=int(start * 1e9),
        end_time=int((start + ms / 1000) * 1e9),
    )
    row = span_row(span)
    return (*row[:6], None, *row[7:]) if legacy else row


@pytest.fixture
def span_store(tmp_path: Path) -> str:
    """3 requests to /orders/{id}, 2 unmatched ones, 1 unmatched one from an older store."""
    path = tmp_path / "spans.db"
    now = time.time()
    SQLiteStore(str(path), retention=86400).write(
        spans=[
            server_span(1, route="/orders/{id}", status=200, start=now - 60, ms=10),
            server_span(2, route="/orders/{id}", status=200, start=now - 50, ms=20),
            server_span(3, route="/orders/{id}", status=500, start=now - 40, ms=30),
            server_span(4, route=None, status=404, start=now - 30, ms=1),
            server_span(5, route=None, status=404, start=now - 20, ms=2),
            server_span(6, route=None, status=404, start=now - 10, ms=3, legacy=True),
        ]
    )
    return str(path)


def test_unmatched_span_keeps_otel_conventions_and_the_store_row_says_unmatched() -> None:
    """The span of an unmatched request has no `http.route` and is named `GET`; its store row's
    route is `<unmatched>`; a client span without a route stays without one."""
    row = server_span(4, route=None, status=404, start=T0, ms=1)
    assert (row[3], row[6]) == ("GET", "<unmatched>")
    assert "http.route" not in json.loads(row[12])
    client = ReadableSpan(
        name="GET",
        context=SpanContext(9, 9, is_remote=False, trace_flags=TraceFlags(1)),
        attributes={"http.request.method": "GET"},
        kind=SpanKind.CLIENT,
    )
    assert span_row(client)[6] is None


def test_traces_stats_table_lists_unmatched_requests_as_one_route(span_store: str) -> None:
    """`traces stats` groups unmatched requests (old rows included) under `<unmatched>`, not
    under the span name `GET`."""
    code, out = run("traces", "stats", "--store", span_store)
    assert code == 0
    assert out.splitlines() == [
        "SERVICE  ROUTE         COUNT  ERRORS  ERROR RATE  P50     P95     P99",
        "shop     /orders/{id}  3      1       33.3%       20.0ms  30.0ms  30.0ms",
        "shop     <unmatched>   3      0       0.0%        2.0ms   3.0ms   3.0ms",
    ]


def test_traces_search_route_unmatched(span_store: str) -> None:
    """`traces search --route '<unmatched>'` finds the unmatched requests, newest first, old
    rows included; their summaries carry the route."""
    code, out = run("traces", "search", "--route", "<unmatched>", "--json", "--store", span_store)
    assert code == 0
    found = json.loads(out)
    assert [(t["trace_id"][-1], t["name"], t["route"], t["http_status"]) for t in found] == [
        ("6", "GET", "<unmatched>", 404),
        ("5", "GET", "<unmatched>", 404),
        ("4", "GET", "<unmatched>", 404),
    ]
    code, out = run("traces", "search", "--route", "GET", "--store", span_store)
    assert (code, out) == (0, "No traces match.\n")


def test_requests_through_the_middleware_are_found_under_unmatched(tmp_path: Path) -> None:
    """End to end: a 404 served through the ASGI middleware is stored as `<unmatched>` and
    counted under that route by `traces stats`."""
    path = tmp_path / "t.db"
    telemetry = Telemetry(
        {"store": {"path": str(path)}, "logging": {"sinks": {"console": False}}},
        service="shop", use_env=False, set_global=False, capture_stdlib_logging=False,
    )  # fmt: skip

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = TelemetryMiddleware(Starlette(routes=[Route("/ok", ok)]), telemetry=telemetry)

    async def drive() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/ok")).status_code == 200
            for _ in range(2):
                assert (await client.get("/wp-login.php")).status_code == 404

    asyncio.run(drive())
    telemetry.shutdown()
    code, out = run("traces", "stats", "--json", "--store", str(path))
    assert code == 0
    assert sorted((r["route"], r["count"]) for r in json.loads(out)) == [
        ("/ok", 1),
        ("<unmatched>", 2),
    ]
    with TracingManager(path) as store:
        spans = [s for t in store.list_traces() for s in store.get_trace(t.trace_id)]
    unmatched = [s for s in spans if s.route == "<unmatched>"]
    assert [(s.name, "http.route" in s.attributes) for s in unmatched] == [("GET", False)] * 2


# --- logs tail ---------------------------------------------------------------------------------


def line(service: str, seconds: float, event: str, level: str = "info") -> tuple[Any, ...]:
    return log_row(
        {"timestamp": T0 + seconds, "level": level, "logger": "app", "service": service,
         "event": event}
    )  # fmt: skip


@pytest.fixture
def log_store(tmp_path: Path) -> str:
    """Two workers' batches committed out of time order: w2's (later ids) started earlier."""
    path = tmp_path / "logs.db"
    store = SQLiteStore(str(path), retention=10 * 365 * 86400)
    store.write(logs=[line("w1", 1.0, "w1 first"), line("w1", 3.0, "w1 second")])
    store.write(logs=[line("w2", 0.5, "w2 first"), line("w2", 2.0, "w2 second", "warning")])
    return str(path)


def test_logs_tail_orders_by_time_not_by_insertion(log_store: str) -> None:
    """`logs tail` prints the latest lines by their own timestamp, oldest first."""
    code, out = run("logs", "tail", "--store", log_store)
    assert code == 0
    assert out.splitlines() == [
        "2026-05-28 20:26:40.500 info     w2 app: w2 first",
        "2026-05-28 20:26:41.000 info     w1 app: w1 first",
        "2026-05-28 20:26:42.000 warning  w2 app: w2 second",
        "2026-05-28 20:26:43.000 info     w1 app: w1 second",
    ]
    code, out = run("logs", "tail", "-n", "2", "--json", "--store", log_store)
    assert [json.loads(entry)["event"] for entry in out.splitlines()] == [
        "w2 second",
        "w1 second",
    ]


def test_logs_tail_follow_prints_late_lines_once(log_store: str) -> None:
    """`--follow` prints each line written while it runs exactly once, each poll's lines in
    time order, a line that arrives late included."""
    writer = SQLiteStore(log_store, retention=10 * 365 * 86400)

    def write_later() -> None:
        time.sleep(0.4)
        writer.write(logs=[line("w1", 5.0, "w1 third"), line("w1", 6.0, "w1 fourth")])
        time.sleep(0.4)
        writer.write(logs=[line("w2", 4.0, "w2 late")])  # older than what was printed

    thread = threading.Thread(target=write_later)
    thread.start()
    code, out = run("logs", "tail", "-n", "1", "--follow", "--follow-for", "1.5s",
                    "--interval", "0.1s", "--store", log_store)  # fmt: skip
    thread.join()
    assert code == 0
    assert out.splitlines() == [
        "2026-05-28 20:26:43.000 info     w1 app: w1 second",
        "2026-05-28 20:26:45.000 info     w1 app: w1 third",
        "2026-05-28 20:26:46.000 info     w1 app: w1 fourth",
        "2026-05-28 20:26:44.000 info     w2 app: w2 late",
    ]


# --- metrics list ------------------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(registry)`` -> the URL of a /metrics answering that registry's text."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    servers: list[Any] = []

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    def start(registry: CollectorRegistry) -> str:
        def app(environ: object, start_response: Any) -> list[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [generate_latest(registry)]

        server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/metrics"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def http_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    requests = Counter("http_requests_total", "Requests.", ["route", "status"], registry=registry)
    requests.labels("/a", "200").inc()
    requests.labels("/b", "200").inc()
    requests.labels("/b", "500").inc()
    duration = Histogram("http_request_duration_seconds", "Latency.", ["route"], registry=registry)
    duration.labels("/a").observe(0.1)
    duration.labels("/b").observe(0.2)
    Gauge("http_requests_in_progress", "In flight.", registry=registry).set(1)
    return registry


def test_metrics_list_table_shows_the_names_prometheus_users_type(serve: Any) -> None:
    """Counters with `_total`, histograms by base name, no `_created` gauges, series counted
    as label sets (a histogram's buckets of one label set are one series)."""
    code, out = run("metrics", "list", "--url", serve(http_registry()))
    assert code == 0
    assert out.splitlines() == [
        "NAME                           TYPE       SERIES  HELP",
        "http_request_duration_seconds  histogram  2       Latency.",
        "http_requests_in_progress      gauge      1       In flight.",
        "http_requests_total            counter    3       Requests.",
    ]


def test_metrics_list_from_a_worker_directory_uses_the_same_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--dir` (multiprocess files, where prometheus-client keeps no `_created`) gives the
    same names and series counts as a scrape."""
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        registry = CollectorRegistry()
        Counter("jobs_total", "Jobs.", ["queue"], registry=registry).labels("a").inc()
        Histogram("job_seconds", "Job time.", ["queue"], registry=registry).labels("a").observe(1)
    finally:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    code, out = run("metrics", "list", "--dir", str(tmp_path), "--json")
    assert code == 0
    assert json.loads(out) == [
        {"name": "job_seconds", "type": "histogram", "help": "Job time.", "series": 1},
        {"name": "jobs_total", "type": "counter", "help": "Jobs.", "series": 1},
    ]
