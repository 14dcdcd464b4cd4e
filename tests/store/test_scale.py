"""The store at scale: schema 4 (resources and strings once, packed JSON), the upgrade of an older
store, retention by size, keyset pages and SQL percentiles against the obvious computation."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.store import LogQuery, SQLiteStore, TraceQuery, TracingManager
from telemetry_web.store._db import SCHEMA_VERSION, SIZE_REPORTER

NOW = time.time()


@pytest.fixture(autouse=True)
def _fresh_reporter() -> None:
    SIZE_REPORTER.reset()


def span(trace: int, n: int, start: float, *, route: str = "/a", status: str = "unset",
         ms: float = 1.0, parent: int | None = None) -> tuple[Any, ...]:  # fmt: skip
    return (
        f"{trace:032x}", f"{trace * 1000 + n:016x}",
        None if parent is None else f"{trace * 1000 + parent:016x}", f"GET {route}", "server",
        "svc", route, 500 if status == "error" else 200, int(start * 1e9), int(ms * 1e6),
        status, None, json.dumps({"http.request.method": "GET", "k": n}), "[]",
        json.dumps({"service.name": "svc"}),
    )  # fmt: skip


def line(ts: float, event: str, trace: int | None = None) -> tuple[Any, ...]:
    fields = {"timestamp": ts, "event": event, "x": 1}
    trace_id = None if trace is None else f"{trace:032x}"
    return (ts, "info", 20, "app", "svc", event, trace_id, None, None, json.dumps(fields))


_OLD_DDL = """
CREATE TABLE spans (id INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, span_id TEXT NOT NULL,
    parent_id TEXT, name TEXT NOT NULL, kind TEXT NOT NULL, service TEXT NOT NULL, route TEXT,
    http_status INTEGER, start_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL,
    status TEXT NOT NULL, status_message TEXT, attributes TEXT NOT NULL, events TEXT NOT NULL,
    resource TEXT NOT NULL);
CREATE INDEX spans_trace ON spans (trace_id);
CREATE TABLE logs (id INTEGER PRIMARY KEY, ts REAL NOT NULL, level TEXT NOT NULL,
    level_no INTEGER NOT NULL, logger TEXT, service TEXT, event TEXT, trace_id TEXT,
    span_id TEXT, request_id TEXT, fields TEXT NOT NULL);
PRAGMA user_version = 3;
"""


def test_a_store_written_before_schema_4_is_read_and_written_after_the_upgrade(
    tmp_path: Path,
) -> None:
    """A schema-3 file (old DDL, old rows: a legacy unmatched span with no route) is upgraded
    by the reader: its spans, logs and route stats read as before, and new rows join them."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_OLD_DDL)
        resource = json.dumps({"service.name": "svc", "process.pid": 1})
        conn.executemany(
            "INSERT INTO spans (trace_id, span_id, parent_id, name, kind, service, route, "
            "http_status, start_ns, duration_ns, status, status_message, attributes, events, "
            "resource) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("a" * 32, "1" * 16, None, "GET /a", "server", "svc", "/a", 200,
                 int((NOW - 20) * 1e9), 5_000_000, "unset", None,
                 '{"http.request.method": "GET", "http.route": "/a"}', "[]", resource),
                ("b" * 32, "2" * 16, None, "GET", "server", "svc", None, 404,
                 int((NOW - 10) * 1e9), 1_000_000, "error", "boom",
                 '{"http.request.method": "GET"}', '[{"name": "exception"}]', resource),
            ],
        )  # fmt: skip
        conn.execute(
            "INSERT INTO logs (ts, level, level_no, logger, service, event, trace_id, span_id, "
            "request_id, fields) VALUES (?, 'warning', 30, 'app', 'svc', 'old line', ?, ?, "
            "'r1', ?)",
            (NOW - 15, "a" * 32, "1" * 16, json.dumps({"event": "old line", "order": 7})),
        )
    conn.close()
    with TracingManager(path) as reader:
        traces = reader.list_traces()
        assert [(t.trace_id, t.route, t.status) for t in traces] == [
            ("b" * 32, "<unmatched>", "error"),
            ("a" * 32, "/a", "unset"),
        ]
        (old,) = reader.get_trace("b" * 32)
        assert (old.events, old.status_message, old.resource) == (
            [{"name": "exception"}],
            "boom",
            {"service.name": "svc", "process.pid": 1},
        )
        assert [(r.route, r.count, r.errors, r.p50) for r in reader.route_stats()] == [
            ("/a", 1, 0, 0.005),
            ("<unmatched>", 1, 1, 0.001),
        ]
        (log,) = reader.logs(LogQuery(trace_id="a" * 32))
        assert (log.level, log.request_id, log.fields["order"]) == ("warning", "r1", 7)
    SQLiteStore(str(path), retention=86400).write(spans=[span(3, 1, NOW)], logs=[line(NOW, "n")])
    with TracingManager(path) as reader:
        assert len(reader.list_traces()) == 3
        assert [r.event for r in reader.logs()] == ["old line", "n"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM resources").fetchone()[0] == 2
        # the views keep the old columns for ad-hoc SQL
        assert conn.execute("SELECT trace_id, kind, status FROM spans ORDER BY id").fetchall() == [
            ("a" * 32, "server", "unset"), ("b" * 32, "server", "error"),
            (f"{3:032x}", "server", "unset"),
        ]  # fmt: skip
    conn.close()


def test_the_store_keeps_under_max_size_by_pruning_the_oldest_rows(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """With a small ``max_size`` the oldest spans and log lines go first, the newest stay, the
    pages in use stay near the limit, and one line reports it per period."""
    path = tmp_path / "t.db"
    store = SQLiteStore(str(path), retention=86400, max_size=400_000)
    for batch in range(60):
        store.write(
            spans=[span(batch * 100 + i, 1, NOW - 600 + batch) for i in range(100)],
            logs=[line(NOW - 600 + batch, f"b{batch}") for _ in range(100)],
        )
    store.close()
    with TracingManager(path) as reader:
        trace_ids = {t.trace_id for t in reader.list_traces(TraceQuery(limit=10_000))}
        events = {r.event for r in reader.logs(LogQuery(limit=10_000))}
    assert f"{5999:032x}" in trace_ids
    assert f"{0:032x}" not in trace_ids
    assert "b59" in events
    assert "b0" not in events
    assert 100 < len(trace_ids) < 6000
    with sqlite3.connect(path) as conn:
        pages, free, size = (
            conn.execute(f"PRAGMA {p}").fetchone()[0]
            for p in ("page_count", "freelist_count", "page_size")
        )
    conn.close()
    assert (pages - free) * size <= 400_000 + 100 * 1024  # the limit plus one batch
    lines = [x for x in capfd.readouterr().err.splitlines() if "max_size" in x]
    assert len(lines) == 1
    assert lines[0].startswith("telemetry-web: Store reached store.max_size (390.625 KiB): "
                               "deleted the oldest ")  # fmt: skip


def test_requests_store_one_resource_and_each_name_once(tmp_path: Path) -> None:
    """200 requests through the middleware: 200 spans and request lines, one resource row,
    the route, name, service and logger once each; attributes and fields read back whole."""
    path = tmp_path / "t.db"
    telemetry = Telemetry(
        {"store": {"path": str(path)}, "logging": {"sinks": {"console": False}}},
        service="orders", use_env=False, set_global=False, capture_stdlib_logging=False,
    )  # fmt: skip
    app = TelemetryMiddleware(
        Starlette(routes=[Route("/users/{uid}", lambda r: PlainTextResponse("ok"))]),
        telemetry=telemetry,
    )

    async def send() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            for i in range(200):
                await c.get(f"/users/{i}")

    asyncio.run(send())
    telemetry.shutdown()
    with sqlite3.connect(path) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("span_rows", "log_rows", "resources")
        ]
        strings = sorted(r[0] for r in conn.execute("SELECT value FROM strings"))
    conn.close()
    assert counts == [200, 200, 1]
    assert strings == ["/users/{uid}", "GET /users/{uid}", "orders", "telemetry_web.request"]
    with TracingManager(path) as reader:
        (trace,) = reader.list_traces(TraceQuery(limit=1))
        (server,) = reader.get_trace(trace.trace_id)
        assert server.attributes["http.route"] == "/users/{uid}"
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["url.path"] == "/users/199"
        assert server.resource["service.name"] == "orders"
        (log,) = reader.logs(LogQuery(trace_id=trace.trace_id))
    assert list(log.fields)[:5] == ["timestamp", "level", "event", "logger", "service"]
    assert {k: log.fields[k] for k in ("event", "route", "path", "status", "trace_id")} == {
        "event": "request", "route": "/users/{uid}", "path": "/users/199", "status": 200,
        "trace_id": trace.trace_id,
    }  # fmt: skip
    assert log.fields["timestamp"].endswith("Z")


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, list[tuple[Any, ...]]]:
    """300 traces of 1-3 spans over 3 routes, 10% errors, written out of start order."""
    rng = random.Random(5)
    rows: list[tuple[Any, ...]] = []
    for t in range(1, 301):
        start = NOW - 1000 + rng.random() * 900
        route = ("/a", "/b", "/c")[t % 3]
        status = "error" if rng.random() < 0.1 else "unset"
        for n in range(rng.randint(1, 3)):
            rows.append(span(t, n, start + n * 0.001, route=route, ms=rng.randint(1, 500),
                             status=status if n == 0 else "unset",
                             parent=None if n == 0 else 0))  # fmt: skip
    rng.shuffle(rows)
    path = tmp_path / "d.db"
    store = SQLiteStore(str(path), retention=86400)
    for i in range(0, len(rows), 97):
        store.write(spans=rows[i : i + 97])
    return path, rows


def _expected_traces(rows: list[tuple[Any, ...]], keep: Any) -> list[str]:
    latest: dict[str, int] = {}
    for r in rows:
        if keep(r):
            latest[r[0]] = max(latest.get(r[0], 0), r[8])
    return [t for t, _ in sorted(latest.items(), key=lambda kv: -kv[1])]


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        (TraceQuery(), lambda r: True),
        (TraceQuery(route="/b"), lambda r: r[6] == "/b"),
        (TraceQuery(status="error"), lambda r: r[10] == "error"),
        (TraceQuery(route="/a", status="error"), lambda r: r[6] == "/a" and r[10] == "error"),
        (TraceQuery(min_duration=0.25), lambda r: r[9] >= 250_000_000),
        (TraceQuery(attributes={"k": "2"}), lambda r: json.loads(r[12])["k"] == 2),
    ],
)
def test_keyset_pages_list_each_matching_trace_once_newest_first(
    dataset: tuple[Path, list[tuple[Any, ...]]], query: TraceQuery, keep: Any
) -> None:
    """Pages of 7 (cursor to cursor) list exactly the matching traces ordered by their latest
    matching span, as one unlimited call does, each trace once."""
    path, rows = dataset
    expected = _expected_traces(rows, keep)
    with TracingManager(path) as reader:
        unlimited = TraceQuery(**{**query.__dict__, "limit": 10_000})
        whole = [t.trace_id for t in reader.list_traces(unlimited)]
        paged: list[str] = []
        cursor = None
        while True:
            page = reader.trace_page(TraceQuery(**{**query.__dict__, "limit": 7,
                                                   "cursor": cursor}))  # fmt: skip
            paged.extend(t.trace_id for t in page.traces)
            if page.next_cursor is None:
                break
            assert len(page.traces) == 7
            cursor = page.next_cursor
    assert whole == expected
    assert paged == expected


def test_route_stats_match_nearest_rank_percentiles_over_the_rows(
    dataset: tuple[Path, list[tuple[Any, ...]]],
) -> None:
    """Counts, errors and p50/p95/p99 per route equal the nearest-rank computation over the
    rows written (what the Python implementation returned)."""
    path, rows = dataset
    expected = []
    for route in ("/a", "/b", "/c"):
        durations = sorted(r[9] / 1e9 for r in rows if r[6] == route)
        errors = sum(1 for r in rows if r[6] == route and r[10] == "error")

        def rank(q: int, d: list[float] = durations) -> float:
            return d[max(1, -(-len(d) * q // 100)) - 1]

        expected.append((route, len(durations), errors, rank(50), rank(95), rank(99)))
    with TracingManager(path) as reader:
        found = [(r.route, r.count, r.errors, r.p50, r.p95, r.p99) for r in reader.route_stats()]
    assert found == expected


def test_store_max_size_is_a_size_with_a_laptop_safe_default() -> None:
    """``store.max_size`` defaults to 1 GiB, takes sizes, and a bad one names the key."""
    from telemetry_web.config import parse_settings
    from telemetry_web.errors import ConfigError

    assert parse_settings({}).store.max_size == 1 << 30
    assert parse_settings({"store": {"max_size": "2MiB"}}).store.max_size == 2 * 1024 * 1024
    with pytest.raises(ConfigError) as info:
        parse_settings({"store": {"max_size": "-3"}})
    assert str(info.value) == (
        "invalid telemetry configuration: store.max_size: expected a positive size such as "
        "'4MiB', '512KB' or bytes, got '-3'"
    )
