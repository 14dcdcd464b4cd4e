"""The reads the UI needs that the store's reader API (``TracingManager``) does not offer yet:
trace search by time range, trace id, HTTP status class and log text with keyset pagination,
the slowest traces of a route, and a route's latency per interval from its spans.

Each function opens its own read-only connection (``file:...?mode=ro``; the UI's requests run on
a thread pool and a sqlite3 connection belongs to one thread), runs parameterised SQL and bounds
what it reads. They are meant to move into ``store/_query.py`` once the store's rework lands.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..store import StoreError

__all__ = [
    "MAX_LIMIT",
    "SearchPage",
    "TraceSearch",
    "route_series",
    "search_traces",
    "slowest_traces",
]

MAX_LIMIT = 200  # traces per page
_SCAN_PAGE = 500  # span rows read per step while collecting distinct traces
_MAX_SCANNED = 20_000  # span rows read at most per search page
_MAX_LOG_TRACES = 500  # trace ids taken from matching log lines
_MAX_SERIES_SPANS = 200_000  # server spans read at most for one route's latency chart
_STATUS_CLASSES = {"2xx": (200, 299), "3xx": (300, 399), "4xx": (400, 499), "5xx": (500, 599)}
_SUMMARY_COLUMNS = (
    "id, trace_id, span_id, parent_id, name, kind, service, route, http_status, start_ns, "
    "duration_ns, status"
)


@dataclass(frozen=True)
class TraceSearch:
    """What a search matches: every given condition holds for one span of the trace (``text``:
    one of the trace's log lines contains it)."""

    service: str | None = None
    route: str | None = None
    status: str | None = None  # "error", "ok", or a class: "2xx", "3xx", "4xx", "5xx"
    min_duration: float | None = None  # seconds
    start: float | None = None  # epoch seconds, inclusive
    end: float | None = None  # epoch seconds, exclusive
    trace_id: str | None = None  # a full id or a prefix
    text: str | None = None  # in a log line's event or fields
    limit: int = 50
    before: tuple[int, int] | None = None  # keyset cursor: (start_ns, id) of the last span read


@dataclass(frozen=True)
class SearchPage:
    traces: list[dict[str, Any]]
    next: tuple[int, int] | None  # the cursor of the next page, None on the last one


@contextmanager
def _connect(path: str) -> Iterator[sqlite3.Connection]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the telemetry store at {path}: {exc}") from None
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the telemetry store at {path}: {exc}") from None
    finally:
        conn.close()


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _span_filter(query: TraceSearch, log_traces: Sequence[str] | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.service:
        where.append("service = ?")
        params.append(query.service)
    if query.route:
        where.append("route = ?")
        params.append(query.route)
    if query.status == "error":
        where.append("status = 'error'")
    elif query.status == "ok":
        where.append("status != 'error'")
    elif query.status in _STATUS_CLASSES:
        where.append("http_status BETWEEN ? AND ?")
        params.extend(_STATUS_CLASSES[query.status])
    if query.min_duration is not None:
        where.append("duration_ns >= ?")
        params.append(int(query.min_duration * 1e9))
    if query.start is not None:
        where.append("start_ns >= ?")
        params.append(int(query.start * 1e9))
    if query.end is not None:
        where.append("start_ns < ?")
        params.append(int(query.end * 1e9))
    if query.trace_id:
        prefix = query.trace_id.lower()
        where.append("trace_id >= ? AND trace_id < ?")
        params.extend([prefix, prefix + "g"])  # ids are lower-case hex: 'g' sorts after them
    if log_traces is not None:
        where.append(f"trace_id IN ({', '.join('?' * len(log_traces))})")
        params.extend(log_traces)
    return " AND ".join(where) or "1 = 1", params


def _traces_with_text(conn: sqlite3.Connection, query: TraceSearch) -> list[str]:
    """The trace ids of the newest log lines holding ``query.text`` (at most 500)."""
    where = ["trace_id IS NOT NULL", "(event LIKE ? ESCAPE '\\' OR fields LIKE ? ESCAPE '\\')"]
    pattern = _like(query.text or "")
    params: list[Any] = [pattern, pattern]
    if query.start is not None:
        where.append("ts >= ?")
        params.append(query.start)
    if query.end is not None:
        where.append("ts < ?")
        params.append(query.end)
    rows = conn.execute(
        f"SELECT trace_id FROM logs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
        [*params, _MAX_LOG_TRACES * 4],
    ).fetchall()
    return list(dict.fromkeys(r[0] for r in rows))[:_MAX_LOG_TRACES]


def search_traces(path: str, query: TraceSearch) -> SearchPage:
    """The newest matching traces (by their newest matching span), ``limit`` per page, with the
    cursor of the next page (keyset by ``(start_ns, id)``: a page costs the same at any depth)."""
    limit = max(1, min(query.limit, MAX_LIMIT))
    with _connect(path) as conn:
        log_traces = _traces_with_text(conn, query) if query.text else None
        if log_traces == []:
            return SearchPage([], None)
        where, params = _span_filter(query, log_traces)
        cursor = query.before
        found: dict[str, None] = {}
        scanned = 0
        exhausted = False
        while len(found) < limit and scanned < _MAX_SCANNED:
            keyset = "" if cursor is None else " AND (start_ns < ? OR (start_ns = ? AND id < ?))"
            extra = [] if cursor is None else [cursor[0], cursor[0], cursor[1]]
            rows = conn.execute(
                f"SELECT id, trace_id, start_ns FROM spans WHERE {where}{keyset} "
                "ORDER BY start_ns DESC, id DESC LIMIT ?",
                [*params, *extra, _SCAN_PAGE],
            ).fetchall()
            for row in rows:
                scanned += 1
                cursor = (row["start_ns"], row["id"])
                found.setdefault(row["trace_id"], None)
                if len(found) == limit:
                    break
            if len(rows) < _SCAN_PAGE and len(found) < limit:
                exhausted = True
                break
        summaries = _summaries(conn, list(found))
    return SearchPage(summaries, None if exhausted or not found else cursor)


def slowest_traces(
    path: str, service: str, route: str, start: float, limit: int = 20
) -> list[dict[str, Any]]:
    """The traces of the slowest server spans of one route since ``start``, slowest first."""
    with _connect(path) as conn:
        rows = conn.execute(
            "SELECT trace_id FROM spans WHERE kind = 'server' AND service = ? AND route = ? "
            "AND start_ns >= ? ORDER BY duration_ns DESC LIMIT ?",
            (service, route, int(start * 1e9), max(1, min(limit, MAX_LIMIT))),
        ).fetchall()
        return _summaries(conn, list(dict.fromkeys(r[0] for r in rows)))


def _summaries(conn: sqlite3.Connection, trace_ids: list[str]) -> list[dict[str, Any]]:
    """One summary per trace, in the order given: its root span's name, service, route and
    status, its whole duration, span count and whether any span failed."""
    if not trace_ids:
        return []
    rows = conn.execute(
        f"SELECT {_SUMMARY_COLUMNS} FROM spans WHERE trace_id IN "
        f"({', '.join('?' * len(trace_ids))}) ORDER BY start_ns, id",
        trace_ids,
    ).fetchall()
    by_trace: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        by_trace.setdefault(row["trace_id"], []).append(row)
    result = []
    for trace_id in trace_ids:
        spans = by_trace.get(trace_id)
        if not spans:
            continue
        ids = {s["span_id"] for s in spans}
        root = next((s for s in spans if s["parent_id"] not in ids), spans[0])
        first = spans[0]["start_ns"]
        end = max(s["start_ns"] + s["duration_ns"] for s in spans)
        result.append(
            {
                "trace_id": trace_id,
                "name": root["name"],
                "service": root["service"],
                "route": root["route"],
                "http_status": root["http_status"],
                "start": first / 1e9,
                "duration": (end - first) / 1e9,
                "status": "error" if any(s["status"] == "error" for s in spans) else root["status"],
                "span_count": len(spans),
            }
        )
    return result


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    rank = max(1, -(-len(values) * q // 100))
    return values[int(rank) - 1]


def route_series(
    path: str, service: str, route: str, start: float, end: float, step: float
) -> list[dict[str, Any]]:
    """One point per ``step`` seconds in [start, end) with requests: rate per second, error
    ratio and p50/p95/p99 (seconds) of the route's server spans."""
    with _connect(path) as conn:
        rows = conn.execute(
            "SELECT start_ns, duration_ns, status FROM spans WHERE kind = 'server' "
            "AND service = ? AND route = ? AND start_ns >= ? AND start_ns < ? "
            "ORDER BY start_ns LIMIT ?",
            (service, route, int(start * 1e9), int(end * 1e9), _MAX_SERIES_SPANS),
        ).fetchall()
    buckets: dict[int, tuple[list[float], list[int]]] = {}
    for row in rows:
        index = int((row["start_ns"] / 1e9 - start) // step)
        durations, errors = buckets.setdefault(index, ([], [0]))
        durations.append(row["duration_ns"] / 1e9)
        errors[0] += row["status"] == "error"
    points = []
    for index in sorted(buckets):
        durations, errors = buckets[index]
        durations.sort()
        points.append(
            {
                "start": start + index * step,
                "end": start + (index + 1) * step,
                "rate": len(durations) / step,
                "error_ratio": errors[0] / len(durations),
                "p50": _percentile(durations, 50),
                "p95": _percentile(durations, 95),
                "p99": _percentile(durations, 99),
            }
        )
    return points
