"""Reading the store: :class:`TracingManager` answers the CLI's questions with indexed queries.

Readers open the file read-only; WAL mode lets them run while workers write. Every query walks
an index in the order it answers in and stops at its limit: traces newest first through the
start-time, service, route, error or trace-id index (keyset pages: ``TraceQuery.cursor``), route
percentiles by counting along the per-route latency index, log lines along the time index. The
UI's reads (text in log lines, slowest traces, a route's series) are in :mod:`._search`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import semconv as sc
from . import _search
from ._codec import id_in, id_out, unpack
from ._db import SQLiteStore, stored_route
from ._rows import KINDS, LEVEL_NAMES, STATUSES
from ._search import (
    SLOWEST_SQL,
    STATUS_CLASSES,
    RoutePoint,
    decode_log_cursor,
    encode_log_cursor,
    id_range,
    register,
    route_names,
    route_series,
    slowest_trace_ids,
    text_trace_ids,
)
from ._writers import COLUMN_KEYS, iso_time

__all__ = [
    "LogQuery",
    "LogRecord",
    "RoutePoint",
    "RouteStats",
    "SpanRecord",
    "StoreError",
    "TracePage",
    "TraceQuery",
    "TraceSummary",
    "TracingManager",
]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class StoreError(Exception):
    """The store is missing, empty or not a telemetry-web store."""


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    route: str | None
    http_status: int | None
    start: float  # epoch seconds
    duration: float  # seconds
    status: str  # "unset", "ok" or "error"
    status_message: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    resource: dict[str, Any]

    @property
    def is_error(self) -> bool:
        return self.status == "error"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__}


@dataclass(frozen=True)
class LogRecord:
    id: int
    timestamp: float
    level: str
    logger: str | None
    service: str | None
    event: str | None
    trace_id: str | None
    span_id: str | None
    request_id: str | None
    fields: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__}


@dataclass(frozen=True)
class TraceSummary:
    trace_id: str
    name: str  # the root span's (or the earliest span's) name
    service: str
    route: str | None
    http_status: int | None
    start: float
    duration: float
    status: str  # "error" when any span of the trace failed
    span_count: int

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__}


@dataclass(frozen=True)
class RouteStats:
    service: str
    route: str
    count: int
    errors: int
    p50: float
    p95: float
    p99: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "error_rate": self.error_rate}


@dataclass(frozen=True)
class TraceQuery:
    """What ``list_traces`` matches: every given condition holds for one span of the trace;
    with ``text``, one of the trace's log lines holds it too (in its event or fields, any case),
    and the traces come by their newest such line (see :mod:`._search` for its bound)."""

    service: str | None = None
    route: str | None = None
    status: str | None = None  # "error", "ok" (not an error) or a class: "2xx" ... "5xx"
    min_duration: float | None = None  # seconds
    since: float | None = None  # seconds back from now
    attributes: dict[str, str] = field(default_factory=dict)
    limit: int = 20
    cursor: str | None = None  # TracePage.next_cursor of the page before
    start: float | None = None  # epoch seconds, inclusive
    end: float | None = None  # epoch seconds, exclusive
    trace_id: str | None = None  # a trace id or a prefix of one (hex)
    text: str | None = None  # in one of the trace's log lines
    # span rows read at most per page (in slices along the start-time index; not for status
    # "error" or a trace id prefix of 4+ digits, read along their own indexes); a page that
    # runs out of them is short, and its cursor continues where it stopped. None: no bound.
    max_scan: int | None = None


@dataclass(frozen=True)
class TracePage:
    """One page of ``list_traces``; ``next_cursor`` (None on the last page) asks for the next."""

    traces: list[TraceSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class LogQuery:
    service: str | None = None
    level: str | None = None  # this level and above
    trace_id: str | None = None
    since: float | None = None  # seconds back from now
    after_id: int = 0  # only lines written after this one (``--follow``)
    until_id: int | None = None  # only lines written up to this one (a snapshot)
    limit: int = 50


_SPAN_SELECT = (
    "SELECT id, trace_id, span_id, parent_id, name, kind, service, route, http_status, "
    "start_ns, duration_ns, status, status_message, attributes, events, resource FROM span_rows"
)
_LOG_SELECT = (
    "SELECT id, ts, level, level_no, logger, service, event, trace_id, span_id, request_id, fields "
    "FROM log_rows"
)
_ERROR = STATUSES.index("error")
_SERVER = KINDS.index("server")


def _attribute_text(packed: Any, key: str) -> str | None:
    """``CAST(json_extract(attributes, key) AS TEXT)`` of a packed attributes column."""
    value = unpack(packed, {}).get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _log(row: sqlite3.Row, strings: Any) -> LogRecord:
    columns = {
        "level": row["level"] or LEVEL_NAMES[row["level_no"]],
        "event": row["event"],
        "logger": strings(row["logger"]),
        "service": strings(row["service"]),
        "trace_id": id_out(row["trace_id"]),
        "span_id": id_out(row["span_id"]),
        "request_id": id_out(row["request_id"]),
    }
    rest = unpack(row["fields"], {})
    fields = {} if "timestamp" in rest else {"timestamp": iso_time(row["ts"])}
    head, tail = COLUMN_KEYS[:4], COLUMN_KEYS[4:]  # level/event first, ids last, as logged
    fields.update((k, columns[k]) for k in head if columns[k] is not None and k not in rest)
    fields.update(rest)
    fields.update((k, columns[k]) for k in tail if columns[k] is not None and k not in rest)
    return LogRecord(
        id=row["id"],
        timestamp=row["ts"],
        level=columns["level"],
        logger=columns["logger"],
        service=columns["service"],
        event=row["event"],
        trace_id=columns["trace_id"],
        span_id=columns["span_id"],
        request_id=columns["request_id"],
        fields=fields,
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0-100) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


class TracingManager:
    """Queries over one store file (a store written by an older version is brought over to the
    current schema first, which needs write access once).

    Raises:
        StoreError: (from the constructor) the file does not exist or is not a store.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.fspath(path))
        if not os.path.isfile(self.path):
            raise StoreError(
                f"no telemetry store at {self.path}: run the app with the store enabled first, "
                "or point --store (or TELEMETRY_STORE__PATH) at it"
            )
        tables = self._open()
        if "spans" in tables and "span_rows" not in tables:  # written before schema 4
            self._conn.close()
            try:
                SQLiteStore(self.path, retention=1.0, max_size=None).upgrade()
            except Exception as exc:
                raise StoreError(
                    f"the telemetry store at {self.path} was written by an older version and "
                    f"could not be upgraded ({exc}): open it once with write access"
                ) from None
            tables = self._open()
        if not {"span_rows", "log_rows"} <= tables:
            self._conn.close()
            raise StoreError(f"{self.path} is not a telemetry store (no spans and logs tables)")
        self._strings: dict[int, str] = {}
        self._string_ids: dict[str, int | None] = {}
        self._resources: dict[int, dict[str, Any]] = {}

    def _open(self) -> set[str]:
        try:
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA cache_size = -65536")
            self._conn.execute("PRAGMA mmap_size = 1073741824")  # pages read in place
            self._conn.create_function("tw_attr", 2, _attribute_text, deterministic=True)
            register(self._conn)
            return {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> TracingManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None

    def _lazy(self, sql: str, params: Sequence[Any] = ()) -> Iterator[sqlite3.Row]:
        """The rows of a query as SQLite steps to them: leaving early leaves the rest unread."""
        try:
            yield from self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None

    def _string(self, string_id: int | None) -> str | None:
        if string_id is None:
            return None
        found = self._strings.get(string_id)
        if found is None:
            rows = self._query("SELECT value FROM strings WHERE id = ?", (string_id,))
            found = self._strings[string_id] = rows[0][0]
        return found

    def _string_id(self, value: str) -> int | None:
        """The id of a name, service or route; None when no row holds it."""
        if value not in self._string_ids:
            rows = self._query("SELECT id FROM strings WHERE value = ?", (value,))
            if not rows:
                return None  # not cached: a writer may add it any time
            self._string_ids[value] = rows[0][0]
        return self._string_ids[value]

    def _resource(self, resource_id: int) -> dict[str, Any]:
        found = self._resources.get(resource_id)
        if found is None:
            rows = self._query("SELECT attributes FROM resources WHERE id = ?", (resource_id,))
            found = self._resources[resource_id] = json.loads(rows[0][0])
        return dict(found)

    def _span(self, row: sqlite3.Row) -> SpanRecord:
        attributes = unpack(row["attributes"], {})
        kind = KINDS[row["kind"]]
        route = self._string(row["route"])
        # the writer keeps these two attributes in their columns only
        if route is not None and route != sc.ROUTE_UNMATCHED:
            attributes.setdefault(sc.ATTR_HTTP_ROUTE, route)
        if row["http_status"] is not None:
            attributes.setdefault(sc.ATTR_HTTP_STATUS, row["http_status"])
        return SpanRecord(
            trace_id=id_out(row["trace_id"]),
            span_id=id_out(row["span_id"]),
            parent_id=id_out(row["parent_id"]),
            name=self._string(row["name"]) or "",
            kind=kind,
            service=self._string(row["service"]) or "",
            route=route or stored_route(kind, attributes),
            http_status=row["http_status"],
            start=row["start_ns"] / 1e9,
            duration=row["duration_ns"] / 1e9,
            status=STATUSES[row["status"]],
            status_message=row["status_message"],
            attributes=attributes,
            events=unpack(row["events"], []),
            resource=self._resource(row["resource"]),
        )

    def is_empty(self) -> bool:
        spans = self._query("SELECT EXISTS (SELECT 1 FROM span_rows)")[0][0]
        logs = self._query("SELECT EXISTS (SELECT 1 FROM log_rows)")[0][0]
        return not spans and not logs

    # --- spans and traces ---------------------------------------------------------------------

    def get_span(self, span_id: str, trace_id: str | None = None) -> SpanRecord | None:
        """The span with this id; give its ``trace_id`` for an indexed lookup (without it the
        whole table is read)."""
        where, params = "span_id = ?", [id_in(span_id.lower())]
        if trace_id is not None:
            key = id_in(trace_id.lower())
            where += " AND substr(trace_id, 1, 8) = substr(?, 1, 8) AND trace_id = ?"
            params.extend([key, key])
        rows = self._query(f"{_SPAN_SELECT} WHERE {where} LIMIT 1", params)
        return self._span(rows[0]) if rows else None

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of the trace, by start time; a unique prefix of the id is enough."""
        trace_id = trace_id.lower()
        if not trace_id or len(trace_id) > 32 or not set(trace_id) <= set("0123456789abcdef"):
            return []
        if len(trace_id) < 32:
            low = bytes.fromhex(trace_id.ljust(32, "0"))
            high = bytes.fromhex(trace_id.ljust(32, "f"))
            ids = self._query(
                "SELECT DISTINCT trace_id FROM span_rows WHERE substr(trace_id, 1, 8) "
                "BETWEEN ? AND ? AND trace_id BETWEEN ? AND ? LIMIT 2",
                (low[:8], high[:8], low, high),
            )
            if len(ids) > 1:
                raise StoreError(f"trace id prefix {trace_id!r} matches several traces")
            if not ids:
                return []
            key = ids[0][0]
        else:
            key = bytes.fromhex(trace_id)
        rows = self._query(
            f"{_SPAN_SELECT} WHERE substr(trace_id, 1, 8) = ? AND trace_id = ? "
            "ORDER BY start_ns, id",
            (key[:8], key),
        )
        return [self._span(r) for r in rows]

    def list_traces(self, query: TraceQuery | None = None) -> list[TraceSummary]:
        """The newest traces with a span matching ``query``, newest first."""
        return self.trace_page(query).traces

    def trace_page(self, query: TraceQuery | None = None) -> TracePage:
        """``list_traces`` one page at a time: the traces whose latest matching span comes
        after ``query.cursor`` (newest first, by that span's start time), and the cursor of the
        next page. Matching spans are read along an index in that order, a chunk at a time,
        until ``limit`` traces are found: nothing is grouped or sorted in full."""
        query = query or TraceQuery()
        filters = self._span_filter(query)
        if filters is None or query.limit <= 0:
            return TracePage([], None)
        where, params = filters
        cursor = _decode_cursor(query.cursor)
        if query.text:
            return self._text_page(query, where, params, cursor)
        # (errors come along their own index, and a trace id prefix of 4 hex digits or more
        # picks few rows along the trace-id index: both bounded without slices)
        if query.max_scan is not None and query.status != "error" and len(query.trace_id or "") < 4:
            return self._bounded_page(query, where, params, cursor)
        found: dict[bytes, None] = {}
        earlier: set[bytes] = set()  # traces listed on an earlier page
        position, chunk, exhausted = cursor, 64, False
        while len(found) < query.limit and not exhausted:
            sql_where, sql_params = list(where), list(params)
            if position is not None:
                sql_where.append("start_ns <= ? AND (start_ns < ? OR id < ?)")
                sql_params.extend([position[0], position[0], position[1]])
            rows = self._query(
                f"SELECT id, trace_id, start_ns FROM span_rows WHERE {' AND '.join(sql_where)} "
                "ORDER BY start_ns DESC, id DESC LIMIT ?",
                [*sql_params, chunk],
            )
            exhausted = len(rows) < chunk
            for row in rows:
                position = (row["start_ns"], row["id"])
                trace = row["trace_id"]
                if trace in found or trace in earlier:
                    continue
                if cursor is not None and self._listed_before(trace, where, params, cursor):
                    earlier.add(trace)
                    continue
                found[trace] = None
                if len(found) == query.limit:
                    exhausted = exhausted and row is rows[-1]
                    break
            chunk = min(chunk * 4, 4096)
        summaries = [s for s in map(self._summary, map(id_out, found)) if s is not None]
        more = len(found) == query.limit and not exhausted and position is not None
        return TracePage(summaries, _encode_cursor(position) if more and position else None)

    def _bounded_page(
        self,
        query: TraceQuery,
        where: list[str],
        params: list[Any],
        cursor: tuple[int, int] | None,
    ) -> TracePage:
        """``trace_page`` reading at most ``query.max_scan`` span rows: slices of
        ``SPAN_SLICE`` rows along the start-time index, each searched with the filters."""
        start, end = self._time_range(query)
        span_where, span_params = ["1 = 1"], []
        if start is not None:
            span_where.append("start_ns >= ?")
            span_params.append(int(start * 1e9))
        if end is not None:
            span_where.append("start_ns < ?")
            span_params.append(int(end * 1e9))
        found: dict[bytes, None] = {}
        earlier: set[bytes] = set()
        position, scanned, size = cursor, 0, 1000
        while len(found) < query.limit and scanned < (query.max_scan or 0):
            size = min(size, _search.SPAN_SLICE, (query.max_scan or 0) - scanned)
            keyset, keyset_params = list(span_where), list(span_params)
            if position is not None:
                keyset.append("start_ns <= ? AND (start_ns < ? OR id < ?)")
                keyset_params.extend([position[0], position[0], position[1]])
            bound = self._query(
                f"SELECT start_ns, id FROM span_rows INDEXED BY span_rows_start WHERE "
                f"{' AND '.join(keyset)} ORDER BY start_ns DESC, id DESC LIMIT 1 OFFSET ?",
                [*keyset_params, size - 1],
            )
            if bound:
                keyset.append("start_ns >= ? AND (start_ns > ? OR id >= ?)")
                keyset_params.extend([bound[0][0], bound[0][0], bound[0][1]])
            rows = self._lazy(
                f"SELECT id, trace_id, start_ns FROM span_rows WHERE {' AND '.join(where)} AND "
                f"{' AND '.join(keyset)} ORDER BY start_ns DESC, id DESC",
                [*params, *keyset_params],
            )
            for row in rows:
                position = (row["start_ns"], row["id"])
                trace = row["trace_id"]
                if trace in found or trace in earlier:
                    continue
                if cursor is not None and self._listed_before(trace, where, params, cursor):
                    earlier.add(trace)
                    continue
                found[trace] = None
                if len(found) == query.limit:
                    break
            else:
                if not bound:
                    position = None  # every row read
                    break
                position = (bound[0][0], bound[0][1])
                scanned, size = scanned + size, size * 4
        summaries = [s for s in map(self._summary, map(id_out, found)) if s is not None]
        return TracePage(summaries, None if position is None else _encode_cursor(position))

    def _text_page(
        self, query: TraceQuery, where: list[str], params: list[Any], cursor: Any
    ) -> TracePage:
        start, end = self._time_range(query)
        found, position = text_trace_ids(
            self._query,
            self._lazy,
            text=query.text or "",
            span_where=where,
            span_params=params,
            start=start,
            end=end,
            cursor=None if cursor is None else decode_log_cursor(cursor),
            limit=query.limit,
        )
        summaries = [s for s in map(self._summary, map(id_out, found)) if s is not None]
        return TracePage(summaries, None if position is None else encode_log_cursor(position))

    @staticmethod
    def _time_range(query: TraceQuery) -> tuple[float | None, float | None]:
        """The epoch-second bounds of ``since``/``start``/``end`` (the later start wins)."""
        starts = [s for s in (query.start,) if s is not None]
        if query.since is not None:
            starts.append(time.time() - query.since)
        return (max(starts) if starts else None), query.end

    def _listed_before(
        self, trace: bytes, where: list[str], params: list[Any], cursor: tuple[int, int]
    ) -> bool:
        """Whether a matching span of the trace comes at or before the cursor (newest first):
        the trace was on an earlier page."""
        rows = self._query(
            "SELECT 1 FROM span_rows INDEXED BY span_rows_trace WHERE substr(trace_id, 1, 8) = ? "
            f"AND trace_id = ? AND {' AND '.join(where)} AND "
            "(start_ns > ? OR (start_ns = ? AND id >= ?)) LIMIT 1",
            [trace[:8], trace, *params, cursor[0], cursor[0], cursor[1]],
        )
        return bool(rows)

    def _span_filter(self, query: TraceQuery) -> tuple[list[str], list[Any]] | None:
        """The WHERE terms of a TraceQuery (None: a name no span has, so nothing matches).
        Status and kind are literals so that the partial indexes apply."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        for column, value in (("service", query.service), ("route", query.route)):
            if value:
                string_id = self._string_id(value)
                if string_id is None:
                    return None
                where.append(f"{column} = ?")
                params.append(string_id)
        if query.route:  # routes are server spans' (and the literal lets the route index apply)
            where.append(f"kind = {_SERVER}")
        if query.status == "error":
            where.append(f"status = {_ERROR}")
        elif query.status == "ok":
            where.append(f"status != {_ERROR}")
        elif query.status in STATUS_CLASSES:
            where.append("http_status BETWEEN ? AND ?")
            params.extend(STATUS_CLASSES[query.status])
        if query.min_duration is not None:
            where.append("duration_ns >= ?")
            params.append(int(query.min_duration * 1e9))
        start, end = self._time_range(query)
        if start is not None:
            where.append("start_ns >= ?")
            params.append(int(start * 1e9))
        if end is not None:
            where.append("start_ns < ?")
            params.append(int(end * 1e9))
        if query.trace_id is not None:
            prefix = query.trace_id.lower()
            if not 0 < len(prefix) <= 32 or not set(prefix) <= set("0123456789abcdef"):
                return None
            low, high = id_range(prefix)
            # a range on the 8-byte prefix index, then the whole id
            where.append("substr(trace_id, 1, 8) BETWEEN ? AND ? AND trace_id BETWEEN ? AND ?")
            params.extend([low[:8], high[:8], low, high])
        for key, value in query.attributes.items():
            if key == sc.ATTR_HTTP_STATUS:  # kept in its column (see _span)
                where.append("(CAST(http_status AS TEXT) = ? OR tw_attr(attributes, ?) = ?)")
                params.extend([value, key, value])
                continue
            if key == sc.ATTR_HTTP_ROUTE:
                where.append("(route IS ? OR tw_attr(attributes, ?) = ?)")
                params.extend([self._string_id(value), key, value])
                continue
            where.append("tw_attr(attributes, ?) = ?")
            params.extend([key, value])
        return where, params

    def _summary(self, trace_id: str) -> TraceSummary | None:
        spans = self.get_trace(trace_id)
        if not spans:
            return None
        ids = {s.span_id for s in spans}
        root = next((s for s in spans if s.parent_id is None or s.parent_id not in ids), spans[0])
        end = max(s.start + s.duration for s in spans)
        return TraceSummary(
            trace_id=trace_id,
            name=root.name,
            service=root.service,
            route=root.route,
            http_status=root.http_status,
            start=spans[0].start,
            duration=end - spans[0].start,
            status="error" if any(s.is_error for s in spans) else root.status,
            span_count=len(spans),
        )

    def route_stats(
        self, service: str | None = None, since: float | None = None
    ) -> list[RouteStats]:
        """Per service and route of the server spans: count, errors and the nearest-rank
        latency percentiles, counted in SQL along the per-route latency index (the p95 and p99
        from its slow end)."""
        where: list[str] = [f"kind = {_SERVER}"]
        params: list[Any] = []
        if service:
            service_id = self._string_id(service)
            if service_id is None:
                return []
            where.append("service = ?")
            params.append(service_id)
        cutoff = None if since is None else int((time.time() - since) * 1e9)
        oldest = self._query("SELECT MIN(start_ns) FROM span_rows")[0][0]
        if cutoff is not None and oldest is not None and cutoff > oldest:
            # (a window reaching back past the oldest span filters nothing: left out, the
            # counts and ranks walk the index without reading each entry's start time)
            where.append("start_ns >= ?")
            params.append(cutoff)
        # routed spans grouped along the route index alone; the rare server spans without a
        # route (not HTTP) by name
        # (errors counted along the small errors index: summing them here costs more than the
        # count itself)
        errors = {
            (r[0], r[1]): r[2]
            for r in self._query(
                "SELECT route, service, COUNT(*) FROM span_rows INDEXED BY span_rows_errors "
                f"WHERE {' AND '.join(where)} AND status = {_ERROR} AND route IS NOT NULL "
                "GROUP BY route, service",
                params,
            )
        }
        groups = [
            (svc, route, None, count, errors.get((route, svc), 0))
            for route, svc, count in self._query(
                f"SELECT route, service, COUNT(*) FROM span_rows "
                f"WHERE {' AND '.join(where)} AND route IS NOT NULL GROUP BY route, service",
                params,
            )
        ] + self._query(
            f"SELECT service, NULL, name, COUNT(*), SUM(status = {_ERROR}) FROM span_rows "
            f"WHERE {' AND '.join(where)} AND route IS NULL GROUP BY name, service",
            params,
        )
        found = []
        for svc, route, name, count, failed in groups:
            group = [*where, "service = ?", "route IS ?", "(route IS NOT NULL OR name = ?)"]
            group_params = [*params, svc, route, name]
            ranks = [int(max(1, -(-count * q // 100))) for q in (50, 95, 99)]
            p50, p95, p99 = (self._nth(group, group_params, count, r) for r in ranks)
            found.append(
                RouteStats(
                    service=self._string(svc) or "",
                    route=self._string(route) or self._string(name) or "",
                    count=count,
                    errors=failed,
                    p50=p50,
                    p95=p95,
                    p99=p99,
                )
            )
        return sorted(found, key=lambda r: (r.service, r.route))

    def _nth(self, where: list[str], params: list[Any], count: int, rank: int) -> float:
        """The ``rank``-th smallest duration of the ``count`` matching server spans, walked
        from whichever end of the latency index is nearer."""
        ascending = rank <= count // 2
        rows = self._query(
            f"SELECT duration_ns FROM span_rows WHERE {' AND '.join(where)} "
            f"ORDER BY duration_ns {'' if ascending else 'DESC'} LIMIT 1 OFFSET ?",
            [*params, rank - 1 if ascending else count - rank],
        )
        return rows[0][0] / 1e9 if rows else 0.0

    def slowest_traces(
        self, service: str, route: str, start: float, end: float | None = None, limit: int = 20
    ) -> list[TraceSummary]:
        """The traces of a route's slowest server spans started in [start, end), slowest
        first, each once; read down the per-route latency index from its slow end."""
        ids = self._route_ids(service, route)
        if ids is None or limit <= 0:
            return []
        end_ns = 2**63 - 1 if end is None else int(end * 1e9)
        try:
            rows = self._conn.execute(SLOWEST_SQL, [ids[1], ids[0], int(start * 1e9), end_ns])
            found = slowest_trace_ids(rows, limit)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None
        return [s for s in map(self._summary, map(id_out, found)) if s is not None]

    def route_series(
        self, service: str, route: str, start: float, end: float, step: float
    ) -> list[RoutePoint]:
        """A route's server spans per ``step`` seconds in [start, end): one point per interval
        that had requests, with their rate, error ratio and nearest-rank p50/p95/p99."""
        ids = self._route_ids(service, route)
        if ids is None:
            return []
        return route_series(self._query, ids[0], ids[1], start, end, step)

    def route_names(self, since: float | None = None) -> list[tuple[str, str]]:
        """The (service, route) pairs ``route_stats`` would list, without counting them: a
        route-less server span (not HTTP) goes by its name."""
        since_ns = None if since is None else int((time.time() - since) * 1e9)
        return sorted(
            (self._string(service) or "", self._string(name) or "")
            for service, name, _ in route_names(self._query, since_ns)
        )

    def _route_ids(self, service: str, route: str) -> tuple[int, int] | None:
        service_id, route_id = self._string_id(service), self._string_id(route)
        if service_id is None or route_id is None:
            return None
        return service_id, route_id

    # --- logs ---------------------------------------------------------------------------------

    def logs(self, query: LogQuery | None = None) -> list[LogRecord]:
        """The ``limit`` matching lines with the latest timestamps, oldest first.

        Several processes write at once, so insertion order is not time order: lines are
        ordered by their own timestamp (ties by insertion).
        """
        query = query or LogQuery()
        filters = self._log_filter(query)
        if filters is None:
            return []
        where, params = filters
        rows = self._query(
            f"{_LOG_SELECT} WHERE {' AND '.join(where)} ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, query.limit],
        )
        return [_log(r, self._string) for r in reversed(rows)]

    def logs_written_after(self, query: LogQuery) -> list[LogRecord]:
        """The first ``limit`` matching lines written after ``query.after_id``, in insertion
        order (``--follow``: the next call starts after the last one returned, so each line is
        read once; writers commit in id order, so a line never appears behind one already read).
        """
        filters = self._log_filter(query)
        if filters is None:
            return []
        where, params = filters
        rows = self._query(
            f"{_LOG_SELECT} WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            [*params, query.limit],
        )
        return [_log(r, self._string) for r in rows]

    def last_log_id(self) -> int:
        """The id of the line written last (0 when there is none)."""
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM log_rows")[0][0])

    def _log_filter(self, query: LogQuery) -> tuple[list[str], list[Any]] | None:
        where: list[str] = ["id > ?"]
        params: list[Any] = [query.after_id]
        if query.until_id is not None:
            where.append("id <= ?")
            params.append(query.until_id)
        if query.service:
            service_id = self._string_id(query.service)
            if service_id is None:
                return None
            where.append("service = ?")
            params.append(service_id)
        if query.level:
            level = LEVELS[query.level]
            # the literal lets the warnings-and-above index apply
            where.append(f"level_no >= {level}" + (" AND level_no >= 30" if level >= 30 else ""))
        if query.trace_id:
            key = id_in(query.trace_id.lower())
            where.append("substr(trace_id, 1, 8) = substr(?, 1, 8) AND trace_id = ?")
            params.extend([key, key])
        if query.since is not None:
            where.append("ts >= ?")
            params.append(time.time() - query.since)
        return where, params


def _encode_cursor(position: tuple[int, int]) -> str:
    return f"{position[0]}.{position[1]}"


def _decode_cursor(cursor: str | None) -> tuple[int, int] | None:
    if not cursor:
        return None
    try:
        start, _, row = cursor.partition(".")
        return int(start), int(row)
    except ValueError:
        raise StoreError(f"not a trace page cursor: {cursor!r}") from None
