"""The embedded store at scale: bytes per request, queries at 1M spans, writes under load.

1. Size: N requests (10,000; 2,000 with --quick) through TelemetryMiddleware in-process with the
   store exporter and sink; the file's bytes per 1,000 requests (one span and one request log
   line each).
2. Queries: a store filled with 1,000,000 spans and 5,000,000 log lines (100k/500k with --quick)
   through ``SQLiteStore.write`` in batches; the median of 5 runs of what the CLI and the UI ask
   (``traces search --route R --status error``, ``traces stats``, ``list_traces``, a trace by
   id, ``logs tail``), then the writer's spans/s at that size (batches of 512 spans and 512 log
   lines).
   The UI's JSON endpoints on the same store (``telemetry ui``'s app, in-process through
   httpx's ASGITransport): searches with typical filters, text in log lines, a deep page, a
   trace page with its logs, routes; medians of 5 next to the issue's targets (a search under
   200 ms, a trace page under 100 ms).
3. Load: 5,000 requests/s offered for 20 s (5 s with --quick) through the pipeline into that
   store; spans and log lines written (rows added) and dropped (``telemetry_*_dropped_total``).

    .venv/bin/python -m benchmarks.store_scale [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.store import LogQuery, SQLiteStore, TraceQuery, TracingManager

ROUTES = [f"/api/v1/resource{i}/{{id}}" for i in range(12)]
RESOURCE = json.dumps(
    {"telemetry.sdk.language": "python", "telemetry.sdk.name": "opentelemetry",
     "telemetry.sdk.version": "1.45.1", "service.name": "orders",
     "deployment.environment.name": "development", "process.pid": 4242,
     "service.instance.id": "73467662-52f6-42af-97ea-d1baeddd37ed"}
)  # fmt: skip


def _telemetry(path: str) -> Telemetry:
    return Telemetry(
        {"store": {"path": path, "enabled": "true"}, "logging": {"sinks": {"console": False}},
         "metrics": {"enabled": False}},
        service="orders", use_env=False, set_global=False, capture_stdlib_logging=False,
    )  # fmt: skip


def _app(telemetry: Telemetry) -> Any:
    async def user(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["user_id"]})

    return TelemetryMiddleware(
        Starlette(routes=[Route("/users/{user_id:int}", user)]), telemetry=telemetry
    )


def _file_bytes(path: str) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(path)


def size_per_request(directory: str, requests: int) -> float:
    path = os.path.join(directory, "size.db")
    telemetry = _telemetry(path)
    app = _app(telemetry)

    async def send() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            for i in range(requests):
                await c.get(f"/users/{i}", headers={"user-agent": "bench/1.0"})
                if i % 500 == 499:
                    telemetry.flush()  # nothing dropped: every request is in the file

    asyncio.run(send())
    telemetry.shutdown()
    import sqlite3

    with sqlite3.connect(path) as conn:
        rows = [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("spans", "logs")]
    conn.close()
    assert rows == [requests, requests], rows
    return _file_bytes(path) / requests * 1000


def _rows(rng: random.Random, n: int, now_ns: int, first: int) -> tuple[list[Any], list[Any]]:
    spans, logs = [], []
    for i in range(first, first + n):
        trace, span = f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}"
        route = ROUTES[i % len(ROUTES)]
        status = 500 if rng.random() < 0.01 else 200
        start = now_ns - (10_000_000 - i) * 200_000  # 5,000 spans/s, oldest first
        attributes = json.dumps(
            {"http.request.method": "GET", "url.path": route.replace("{id}", str(i)),
             "url.scheme": "http", "client.address": "127.0.0.1"}
        )  # fmt: skip
        spans.append(
            (trace, span, None, f"GET {route}", "server", "orders", route, status, start,
             int(rng.lognormvariate(15, 1)), "error" if status == 500 else "unset", None,
             attributes, "[]", RESOURCE)
        )  # fmt: skip
        for j in range(5):
            level = "error" if status == 500 and j == 4 else "info"
            logs.append(
                (start / 1e9 + j * 1e-4, level, 40 if level == "error" else 20, "app", "orders",
                 f"step {j}", trace, span, None, json.dumps({"i": i, "route": route}))
            )  # fmt: skip
    return spans, logs


def fill(path: str, spans: int) -> None:
    store = SQLiteStore(path, retention=10 * 365 * 86400, max_size=None)
    rng, now_ns, batch = random.Random(7), time.time_ns(), 5000
    for first in range(0, spans, batch):
        span_rows, log_rows = _rows(rng, batch, now_ns, first)
        store.write(spans=span_rows, logs=log_rows)
    store.close()


def _median_ms(fn: Callable[[], Any], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def queries(path: str) -> dict[str, float]:
    with TracingManager(path) as store:
        some = store.list_traces(TraceQuery(limit=1))[0].trace_id
        return {
            "traces search --route R --status error": _median_ms(
                lambda: store.list_traces(TraceQuery(route=ROUTES[3], status="error"))
            ),
            "traces search --route R": _median_ms(
                lambda: store.list_traces(TraceQuery(route=ROUTES[3]))
            ),
            "traces stats": _median_ms(store.route_stats),
            "list_traces (20 newest)": _median_ms(store.list_traces),
            "list_traces, 5th page": _median_ms(lambda: _pages(store, 5)),
            "trace by id (show)": _median_ms(
                lambda: (store.get_trace(some), store.logs(LogQuery(trace_id=some)))
            ),
            "logs tail (50 newest)": _median_ms(store.logs),
            "logs tail --level error": _median_ms(lambda: store.logs(LogQuery(level="error"))),
        }


UI_TARGETS = {"search": 200.0, "trace": 100.0, "routes": 200.0}


def ui_endpoints(path: str, spans: int) -> list[tuple[str, str, float]]:
    """(what, target kind, median ms) of the UI's JSON endpoints over the store at ``path``."""
    from telemetry_web.ui import create_app

    with TracingManager(path) as store:
        newest_trace = store.list_traces(TraceQuery(limit=1))[0]
        newest, last = newest_trace.trace_id, newest_trace.start
        cursor = None
        for _ in range(5):
            cursor = store.trace_page(TraceQuery(limit=50, cursor=cursor)).next_cursor
    route = ROUTES[3]
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        ("search: newest 50", "search", "/api/traces", {}),
        ("search: route + status error", "search", "/api/traces",
         {"route": route, "status": "error", "since": "1h"}),
        ("search: service + 5xx + min 2 s", "search", "/api/traces",
         {"service": "orders", "status": "5xx", "min_ms": "2000"}),
        ("search: route + min 10 s (rare)", "search", "/api/traces",
         {"route": route, "min_ms": "10000"}),
        ("search: time range (a minute, 20 s back)", "search", "/api/traces",
         {"start": str(last - 80), "end": str(last - 20)}),
        ("search: trace id prefix (4 hex)", "search", "/api/traces", {"trace_id": newest[:4]}),
        ("search: 6th page (before=cursor)", "search", "/api/traces", {"before": cursor}),
        ("search: text in events ('step 3')", "search", "/api/traces", {"text": "step 3"}),
        ("search: text in packed fields, recent", "search", "/api/traces",
         {"text": f'"i": {spans - 100}'}),
        ("search: text in packed fields, oldest", "search", "/api/traces",
         {"text": f'"i": {len(ROUTES) * 1000 + 3}'}),  # reads its 20,000 lines, then a cursor
        ("search: text + route + status error", "search", "/api/traces",
         {"text": "step 4", "route": route, "status": "error"}),
        ("trace page + its log lines", "trace", f"/api/traces/{newest}", {}),
        ("routes (from the spans, 1h)", "routes", "/api/routes", {"window": "1h"}),
        ("services and routes (1d)", "routes", "/api/services", {}),
        ("route: series + slowest + failing", "routes", "/api/route",
         {"service": "orders", "route": route, "window": "1h"}),
    ]  # fmt: skip
    transport = httpx.ASGITransport(app=create_app(path))

    async def measure() -> list[tuple[str, str, float]]:
        results = []
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
            for name, kind, url, params in cases:
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    response = await client.get(url, params=params)
                    times.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                results.append((name, kind, statistics.median(times)))
        return results

    return asyncio.run(measure())


def _pages(store: TracingManager, pages: int) -> None:
    cursor = None
    for _ in range(pages):
        cursor = store.trace_page(TraceQuery(cursor=cursor)).next_cursor


def writer_throughput(path: str) -> float:
    store = SQLiteStore(path, retention=10 * 365 * 86400, max_size=None)
    rng, now_ns = random.Random(11), time.time_ns()
    batches = [_rows(rng, 512, now_ns, 10_000_000 + k * 512) for k in range(20)]
    started = time.perf_counter()
    for span_rows, log_rows in batches:
        store.write(spans=span_rows[:512], logs=log_rows[:512])
    elapsed = time.perf_counter() - started
    store.close()
    return 20 * 512 / elapsed


def _scope(i: int) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": f"/users/{i}", "raw_path": f"/users/{i}".encode(),
        "query_string": b"", "root_path": "", "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip


async def _call(app: Any, i: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    await app(_scope(i), receive, send)


def sustained(path: str, rate: int, seconds: float) -> dict[str, float]:
    """Requests straight into the ASGI app (no HTTP client in the way), ``rate`` per second
    in ticks of 10 ms."""
    telemetry = _telemetry(path)
    app = _app(telemetry)
    sent = 0

    async def send() -> None:
        nonlocal sent
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * rate)
            if sent >= due:
                await asyncio.sleep(0.002)
                continue
            await asyncio.gather(*(_call(app, sent + k) for k in range(due - sent)))
            sent = due

    before = _counts(path)
    started = time.perf_counter()
    asyncio.run(send())
    served = sent / (time.perf_counter() - started)
    telemetry.flush()
    dropped: dict[str, float] = {"spans": 0.0, "logs": 0.0}
    for metric in telemetry.registry.collect():
        for sample in metric.samples:
            if sample.name == "telemetry_spans_dropped_total":
                dropped["spans"] += sample.value
            elif sample.name == "telemetry_log_events_dropped_total":
                dropped["logs"] += sample.value
    telemetry.shutdown()
    after = _counts(path)
    written = {"spans written": after[0] - before[0], "logs written": after[1] - before[1]}
    return {"requests": sent, "served/s": served, **dropped, **written}


def _counts(path: str) -> tuple[int, int]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        spans = conn.execute("SELECT MAX(id) FROM span_rows").fetchone()[0] or 0
        logs = conn.execute("SELECT MAX(id) FROM log_rows").fetchone()[0] or 0
    conn.close()
    return int(spans), int(logs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--spans", type=int)
    args = parser.parse_args()
    spans = args.spans or (100_000 if args.quick else 1_000_000)
    directory = tempfile.mkdtemp(prefix="store-scale-")
    try:
        requests = 2_000 if args.quick else 10_000
        print(f"Store size: {size_per_request(directory, requests) / 1e6:.3f} MB per 1,000 "
              f"requests ({requests:,} requests through the middleware)")  # fmt: skip
        path = os.path.join(directory, "big.db")
        started = time.perf_counter()
        fill(path, spans)
        took = time.perf_counter() - started
        print(f"Filled {spans:,} spans and {5 * spans:,} log lines in {took:.0f} s "
              f"({_file_bytes(path) / 1e6:.0f} MB)")  # fmt: skip
        for name, ms in queries(path).items():
            print(f"  {name:<40} {ms:8.1f} ms (median of 5)")
        print("The UI's JSON endpoints (telemetry ui, in-process):")
        for name, kind, ms in ui_endpoints(path, spans):
            target = UI_TARGETS[kind]
            verdict = "ok" if ms < target else "OVER"
            print(f"  {name:<40} {ms:8.1f} ms  target < {target:.0f} ms  {verdict}")
        print(f"Writer at {spans:,} spans: {writer_throughput(path):,.0f} spans/s "
              "(batches of 512 spans + 512 log lines)")  # fmt: skip
        seconds = 5.0 if args.quick else 20.0
        load = sustained(path, 5000, seconds)
        print(f"5,000 req/s offered for {seconds:.0f} s: {load['requests']:,.0f} requests "
              f"({load['served/s']:,.0f}/s served), written {load['spans written']:,.0f} spans "
              f"and {load['logs written']:,.0f} log lines, dropped {load['spans']:,.0f} spans "
              f"and {load['logs']:,.0f} log lines")  # fmt: skip
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
