"""The store at scale: schema 4 (resources and strings once, packed JSON), the upgrade of an older
store, retention by size, keyset pages and SQL percentiles against the obvious computation."""

from __future__ import annotations

import asyncio
import dataclasses
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


# --- the UI's reads (issue 17): search, text in log lines, slowest traces, series, routes -----

_STATUSES = (200, 200, 200, 201, 302, 404, 500)


@pytest.fixture
def ui_dataset(tmp_path: Path) -> tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """250 traces with random ids over 2 services and 3 routes (1-3 spans: a server span,
    client/internal children), HTTP statuses 2xx-5xx, 1-3 log lines each (events and packed
    fields holding the texts searched), lines of no trace and of traces without spans; all
    written out of time order."""
    rng = random.Random(17)
    spans: list[tuple[Any, ...]] = []
    logs: list[tuple[Any, ...]] = []
    for t in range(250):
        trace = f"{rng.getrandbits(128):032x}"
        start_ns = int((NOW - 1000 + rng.random() * 900) * 1e9)
        service, route = rng.choice(("svc", "api")), rng.choice(("/a", "/b", "/c"))
        http = rng.choice(_STATUSES)
        root = f"{rng.getrandbits(64):016x}"
        attributes = json.dumps({"http.request.method": "GET"})
        spans.append(
            (trace, root, None, f"GET {route}", "server", service, route, http, start_ns,
             t * 1_000_003 + rng.randint(0, 1000), "error" if http >= 500 else "unset", None,
             attributes, "[]", json.dumps({"service.name": service}))
        )  # fmt: skip
        for n in range(rng.randint(0, 2)):
            spans.append(
                (trace, f"{rng.getrandbits(64):016x}", root, "SELECT", ("client", "internal")[n],
                 service, None, None, start_ns + (n + 1) * 1000, 500_000, "unset", None, "{}",
                 "[]", json.dumps({"service.name": service}))
            )  # fmt: skip
        for k in range(rng.randint(1, 3)):
            ts = start_ns / 1e9 + k * 0.001 + t * 1e-7
            event = rng.choice(("request", "Loading order", "cache miss"))
            note = rng.choice(("Alpha beta", "gamma", "Ünïcode ß"))
            fields = {"order_id": rng.randint(1, 99), "note": note}
            level = "error" if http >= 500 else "info"
            logs.append((ts, level, 40 if level == "error" else 20, "app", service, event,
                         trace, None, None, json.dumps(fields, ensure_ascii=False)))  # fmt: skip
    for k in range(30):  # no trace, and a trace without spans: never listed
        ts = NOW - 500 + k
        logs.append((ts, "info", 20, "app", "svc", "Loading order", None, None, None, "{}"))
        logs.append((ts + 0.5, "info", 20, "app", "svc", "gamma", f"{k + 1:032x}", None, None,
                     json.dumps({"note": "Alpha"})))  # fmt: skip
    # the oldest line of all, the only one holding its text
    logs.append((NOW - 1001, "info", 20, "app", "svc", "request", spans[0][0], None, None,
                 json.dumps({"note": "only here"})))  # fmt: skip
    # two server spans that are not HTTP (no route: listed by name), one old route
    spans.append(
        (f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}", None, "consume jobs",
         "server", "worker", None, None, int((NOW - 30) * 1e9), 1000, "unset", None, "{}", "[]",
         json.dumps({"service.name": "worker"}))
    )  # fmt: skip
    spans.append(
        (f"{rng.getrandbits(128):032x}", f"{rng.getrandbits(64):016x}", None, "GET /old",
         "server", "svc", "/old", 200, int((NOW - 5 * 86400) * 1e9), 1000, "unset", None,
         json.dumps({"http.request.method": "GET"}), "[]", json.dumps({"service.name": "svc"}))
    )  # fmt: skip
    rng.shuffle(spans)
    rng.shuffle(logs)
    path = tmp_path / "ui.db"
    store = SQLiteStore(str(path), retention=30 * 86400)
    for i in range(0, max(len(spans), len(logs)), 89):
        store.write(spans=spans[i : i + 89], logs=logs[i : i + 89])
    store.close()
    return path, spans, logs


def _span_keep(query: TraceQuery) -> Any:
    """The independent filter of one span row (SPAN_COLUMNS order) for a TraceQuery."""
    classes = {"2xx": 200, "3xx": 300, "4xx": 400, "5xx": 500}

    def keep(r: tuple[Any, ...]) -> bool:
        return (
            (query.service is None or r[5] == query.service)
            and (query.route is None or (r[6] == query.route and r[4] == "server"))
            and (query.status != "error" or r[10] == "error")
            and (query.status not in classes
                 or (r[7] is not None and classes[query.status] <= r[7] < classes[query.status]
                     + 100))
            and (query.min_duration is None or r[9] >= query.min_duration * 1e9)
            and (query.start is None or r[8] >= int(query.start * 1e9))
            and (query.end is None or r[8] < int(query.end * 1e9))
            and (query.trace_id is None or r[0].startswith(query.trace_id))
        )  # fmt: skip

    return keep


def _paged(reader: TracingManager, query: TraceQuery, limit: int) -> list[str]:
    """Every trace id the pages of ``limit`` list, cursor to cursor (full pages but the last
    for span searches)."""
    listed: list[str] = []
    cursor = None
    for _ in range(1000):
        page = reader.trace_page(dataclasses.replace(query, limit=limit, cursor=cursor))
        listed.extend(t.trace_id for t in page.traces)
        if page.next_cursor is None:
            return listed
        if not query.text and query.max_scan is None:
            assert len(page.traces) == limit
        cursor = page.next_cursor
    raise AssertionError("no last page")


_SEARCHES = [
    TraceQuery(status="4xx"),
    TraceQuery(status="2xx", service="api"),
    TraceQuery(status="5xx", route="/b"),
    TraceQuery(start=NOW - 700, end=NOW - 400),
    TraceQuery(route="/a", min_duration=0.1, start=NOW - 800),
]


@pytest.mark.parametrize("query", _SEARCHES)
@pytest.mark.parametrize("max_scan", [None, 60])
def test_search_by_status_class_and_time_range_pages_like_a_filter_over_the_rows(
    ui_dataset: tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]],
    monkeypatch: pytest.MonkeyPatch,
    query: TraceQuery,
    max_scan: int | None,
) -> None:
    """Status classes and a time range list exactly the traces with a matching span, by their
    newest matching span, each once across keyset pages of 6; the same when a page reads at
    most 60 span rows (slices of 20), its short pages continued by their cursors."""
    from telemetry_web.store import _search

    monkeypatch.setattr(_search, "SPAN_SLICE", 20)
    path, spans, _ = ui_dataset
    expected = _expected_traces(spans, _span_keep(query))
    assert len(expected) > 6
    with TracingManager(path) as reader:
        assert _paged(reader, dataclasses.replace(query, max_scan=max_scan), 6) == expected


def test_search_by_trace_id_prefix_uses_the_id_not_its_text(
    ui_dataset: tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]],
) -> None:
    """A full id finds its trace; 1-, 2- and 3-character prefixes (a range on the binary id)
    find exactly the traces whose hex id starts with them; a non-hex prefix finds nothing."""
    path, spans, _ = ui_dataset
    some = spans[0][0]
    with TracingManager(path) as reader:
        for prefix in (some, some[:1], some[:2], some[:3], "f", "0"):
            query = TraceQuery(trace_id=prefix.upper() if prefix == some else prefix)
            expected = _expected_traces(spans, lambda r, p=prefix: r[0].startswith(p))
            assert expected
            assert _paged(reader, query, 4) == expected, prefix
        assert reader.list_traces(TraceQuery(trace_id="xyz")) == []


def _expected_text(
    spans: list[tuple[Any, ...]], logs: list[tuple[Any, ...]], query: TraceQuery
) -> list[str]:
    """The traces with a span matching ``query`` (its time range included) and a line holding
    its text (event or fields JSON, any case) in the time range, by their newest such line."""
    traces = {r[0] for r in spans if _span_keep(query)(r)}
    needle = (query.text or "").lower()
    lines = sorted(
        (entry for entry in logs
         if entry[6] in traces and (needle in entry[5].lower() or needle in entry[9].lower())
         and (query.start is None or entry[0] >= query.start)
         and (query.end is None or entry[0] < query.end)),
        key=lambda entry: -entry[0],
    )  # fmt: skip
    return list(dict.fromkeys(entry[6] for entry in lines))


_TEXTS = [
    TraceQuery(text="alpha BETA"),  # in the packed fields, any case
    TraceQuery(text="loading ORDER"),  # in the event column
    TraceQuery(text="ünïcode ß", route="/c"),
    TraceQuery(text='"order_id": 7', status="5xx"),
    TraceQuery(text="gamma", start=NOW - 600, end=NOW - 300, service="svc"),
]


@pytest.mark.parametrize("query", _TEXTS)
@pytest.mark.parametrize(("slice_", "scan"), [(5000, 20_000), (37, 111)])
def test_text_in_log_lines_pages_like_a_scan_of_every_line(
    ui_dataset: tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]],
    monkeypatch: pytest.MonkeyPatch,
    query: TraceQuery,
    slice_: int,
    scan: int,
) -> None:
    """Text in a line's event or packed fields (case-insensitive), with span filters and a time
    range: the pages list the traces by their newest matching line, each once, the same with
    the default budget and with a budget of 111 lines per page in slices of 37."""
    from telemetry_web.store import _search

    monkeypatch.setattr(_search, "TEXT_SLICE", slice_)
    monkeypatch.setattr(_search, "TEXT_SCAN", scan)
    path, spans, logs = ui_dataset
    expected = _expected_text(spans, logs, query)
    assert len(expected) > 3
    with TracingManager(path) as reader:
        assert _paged(reader, query, 5) == expected
        whole = reader.trace_page(dataclasses.replace(query, limit=1000))
    if scan == 20_000:
        assert ([t.trace_id for t in whole.traces], whole.next_cursor) == (expected, None)


def test_text_search_reads_a_bounded_number_of_lines_per_page(
    ui_dataset: tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A text only the oldest line holds: each page reads at most TEXT_SCAN lines and answers
    an empty page with a cursor until the page that reaches it."""
    from telemetry_web.store import _search

    monkeypatch.setattr(_search, "TEXT_SLICE", 50)
    monkeypatch.setattr(_search, "TEXT_SCAN", 100)
    path, _, logs = ui_dataset
    oldest = min(logs, key=lambda entry: entry[0])
    with TracingManager(path) as reader:
        pages = []
        cursor = None
        while True:
            page = reader.trace_page(TraceQuery(text="ONLY here", limit=50, cursor=cursor))
            pages.append([t.trace_id for t in page.traces])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert len(pages) == -(-len(logs) // 100)
    assert pages[-1] == [oldest[6]]
    assert all(p == [] for p in pages[:-1])


def test_slowest_traces_of_a_route_are_its_slowest_server_spans_in_the_window(
    ui_dataset: tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]],
) -> None:
    """The slowest server spans of (service, route) started in the window, slowest first."""
    path, spans, _ = ui_dataset
    start, end = NOW - 800, NOW - 200
    rows = [r for r in spans if r[4] == "server" and r[5] == "svc" and r[6] == "/b"
            and int(start * 1e9) <= r[8] < int(end * 1e9)]  # fmt: skip
    expected = [r[0] for r in sorted(rows, key=lambda r: -r[9])][:5]
    with TracingManager(path) as reader:
        found = reader.slowest_traces("svc", "/b", start, end, limit=5)
        assert reader.slowest_traces("svc", "/nowhere", start) == []
    assert [t.trace_id for t in found] == expected
    assert [t.route for t in found] == ["/b"] * 5


def test_route_series_equals_nearest_rank_buckets_over_the_rows(
    ui_dataset: tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]],
) -> None:
    """One point per 60 s interval with requests: rate, error ratio and nearest-rank
    p50/p95/p99 of the route's server spans, as computed over the rows written."""
    path, spans, _ = ui_dataset
    start, end, step = NOW - 1000, NOW - 100, 60.0
    start_ns, step_ns = int(start * 1e9), int(step * 1e9)
    buckets: dict[int, list[tuple[int, str]]] = {}
    for r in spans:
        if r[4] == "server" and (r[5], r[6]) == ("api", "/a") and start_ns <= r[8] < end * 1e9:
            buckets.setdefault((r[8] - start_ns) // step_ns, []).append((r[9], r[10]))

    def rank(d: list[int], q: int) -> float:
        return d[max(1, -(-len(d) * q // 100)) - 1] / 1e9

    expected = []
    for b in sorted(buckets):
        durations = sorted(d for d, _ in buckets[b])
        errors = sum(1 for _, s in buckets[b] if s == "error")
        expected.append((start + b * step, start + (b + 1) * step, len(durations) / step,
                         errors / len(durations), rank(durations, 50), rank(durations, 95),
                         rank(durations, 99)))  # fmt: skip
    assert len(expected) >= 5
    with TracingManager(path) as reader:
        found = reader.route_series("api", "/a", start, end, step)
    assert [(p.start, p.end, p.rate, p.error_ratio, p.p50, p.p95, p.p99) for p in found] == (
        expected
    )


def test_route_names_are_the_routes_route_stats_lists(
    ui_dataset: tuple[Path, list[tuple[Any, ...]], list[tuple[Any, ...]]],
) -> None:
    """The (service, route) pairs of server spans in the window (a route-less one by name), the
    same pairs ``route_stats`` counts; an old route only in a longer window."""
    path, _, _ = ui_dataset
    expected = sorted({(s, r) for s in ("svc", "api") for r in ("/a", "/b", "/c")}
                      | {("worker", "consume jobs")})  # fmt: skip
    with TracingManager(path) as reader:
        assert reader.route_names(since=86400) == expected
        stats = reader.route_stats(since=86400)
        assert sorted((s.service, s.route) for s in stats) == expected
        assert reader.route_names() == sorted([*expected, ("svc", "/old")])
