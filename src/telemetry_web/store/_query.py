"""Reading the store: :class:`TracingManager` answers the CLI's questions with indexed queries.

Readers open the file read-only; WAL mode lets them run while workers write.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._db import LOG_COLUMNS, ROUTE_SQL, SPAN_COLUMNS, stored_route

__all__ = [
    "LogQuery",
    "LogRecord",
    "RouteStats",
    "SpanRecord",
    "StoreError",
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
    """What ``list_traces`` matches: every given condition holds for one span of the trace."""

    service: str | None = None
    route: str | None = None
    status: str | None = None  # "error" or "ok" (not an error)
    min_duration: float | None = None  # seconds
    since: float | None = None  # seconds back from now
    attributes: dict[str, str] = field(default_factory=dict)
    limit: int = 20


@dataclass(frozen=True)
class LogQuery:
    service: str | None = None
    level: str | None = None  # this level and above
    trace_id: str | None = None
    since: float | None = None  # seconds back from now
    after_id: int = 0  # only lines written after this one (``--follow``)
    until_id: int | None = None  # only lines written up to this one (a snapshot)
    limit: int = 50


def _span(row: sqlite3.Row) -> SpanRecord:
    attributes = json.loads(row["attributes"])
    return SpanRecord(
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        parent_id=row["parent_id"],
        name=row["name"],
        kind=row["kind"],
        service=row["service"],
        route=row["route"] or stored_route(row["kind"], attributes),
        http_status=row["http_status"],
        start=row["start_ns"] / 1e9,
        duration=row["duration_ns"] / 1e9,
        status=row["status"],
        status_message=row["status_message"],
        attributes=attributes,
        events=json.loads(row["events"]),
        resource=json.loads(row["resource"]),
    )


def _log(row: sqlite3.Row) -> LogRecord:
    return LogRecord(
        id=row["id"],
        timestamp=row["ts"],
        level=row["level"],
        logger=row["logger"],
        service=row["service"],
        event=row["event"],
        trace_id=row["trace_id"],
        span_id=row["span_id"],
        request_id=row["request_id"],
        fields=json.loads(row["fields"]),
    )


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0-100) of already sorted values; 0 for none."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


class TracingManager:
    """Queries over one store file.

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
        try:
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
            self._conn.row_factory = sqlite3.Row
            tables = {
                r[0]
                for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None
        if not {"spans", "logs"} <= tables:
            self._conn.close()
            raise StoreError(f"{self.path} is not a telemetry store (no spans and logs tables)")

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

    def is_empty(self) -> bool:
        spans = self._query("SELECT EXISTS (SELECT 1 FROM spans)")[0][0]
        logs = self._query("SELECT EXISTS (SELECT 1 FROM logs)")[0][0]
        return not spans and not logs

    # --- spans and traces ---------------------------------------------------------------------

    def get_span(self, span_id: str) -> SpanRecord | None:
        rows = self._query(
            f"SELECT {SPAN_COLUMNS} FROM spans WHERE span_id = ? LIMIT 1", (span_id.lower(),)
        )
        return _span(rows[0]) if rows else None

    def get_trace(self, trace_id: str) -> list[SpanRecord]:
        """Every span of the trace, by start time; a unique prefix of the id is enough."""
        trace_id = trace_id.lower()
        if len(trace_id) < 32:
            ids = self._query(
                "SELECT DISTINCT trace_id FROM spans WHERE trace_id >= ? AND trace_id < ? LIMIT 2",
                (trace_id, trace_id + "g"),
            )
            if len(ids) > 1:
                raise StoreError(f"trace id prefix {trace_id!r} matches several traces")
            if ids:
                trace_id = ids[0][0]
        rows = self._query(
            f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_id = ? ORDER BY start_ns, id",
            (trace_id,),
        )
        return [_span(r) for r in rows]

    def list_traces(self, query: TraceQuery | None = None) -> list[TraceSummary]:
        """The newest traces with a span matching ``query``, newest first."""
        query = query or TraceQuery()
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if query.service:
            where.append("service = ?")
            params.append(query.service)
        if query.route:
            where.append(f"{ROUTE_SQL} = ?")
            params.append(query.route)
        if query.status == "error":
            where.append("status = 'error'")
        elif query.status == "ok":
            where.append("status != 'error'")
        if query.min_duration is not None:
            where.append("duration_ns >= ?")
            params.append(int(query.min_duration * 1e9))
        if query.since is not None:
            where.append("start_ns >= ?")
            params.append(int((time.time() - query.since) * 1e9))
        for key, value in query.attributes.items():
            where.append("CAST(json_extract(attributes, ?) AS TEXT) = ?")
            params.extend([f'$."{key}"', value])
        rows = self._query(
            f"SELECT trace_id, MAX(start_ns) AS latest FROM spans WHERE {' AND '.join(where)} "
            "GROUP BY trace_id ORDER BY latest DESC LIMIT ?",
            [*params, query.limit],
        )
        return [s for s in (self._summary(r["trace_id"]) for r in rows) if s is not None]

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
        """Per service and route of the server spans: count, errors and latency percentiles."""
        where: list[str] = ["kind = 'server'"]
        params: list[Any] = []
        if service:
            where.append("service = ?")
            params.append(service)
        if since is not None:
            where.append("start_ns >= ?")
            params.append(int((time.time() - since) * 1e9))
        rows = self._query(
            f"SELECT service, COALESCE({ROUTE_SQL}, name) AS route, duration_ns, status, "
            f"http_status FROM spans WHERE {' AND '.join(where)} "
            "ORDER BY service, route, duration_ns",
            params,
        )
        grouped: dict[tuple[str, str], tuple[list[float], list[int]]] = {}
        for row in rows:
            durations, errors = grouped.setdefault((row["service"], row["route"]), ([], [0]))
            durations.append(row["duration_ns"] / 1e9)
            if row["status"] == "error":
                errors[0] += 1
        return [
            RouteStats(
                service=svc,
                route=route,
                count=len(durations),
                errors=errors[0],
                p50=percentile(durations, 50),
                p95=percentile(durations, 95),
                p99=percentile(durations, 99),
            )
            for (svc, route), (durations, errors) in grouped.items()
        ]

    # --- logs ---------------------------------------------------------------------------------

    def logs(self, query: LogQuery | None = None) -> list[LogRecord]:
        """The ``limit`` matching lines with the latest timestamps, oldest first.

        Several processes write at once, so insertion order is not time order: lines are
        ordered by their own timestamp (ties by insertion).
        """
        query = query or LogQuery()
        where, params = self._log_filter(query)
        rows = self._query(
            f"SELECT id, {LOG_COLUMNS} FROM logs WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, query.limit],
        )
        return [_log(r) for r in reversed(rows)]

    def logs_written_after(self, query: LogQuery) -> list[LogRecord]:
        """The first ``limit`` matching lines written after ``query.after_id``, in insertion
        order (``--follow``: the next call starts after the last one returned, so each line is
        read once; writers commit in id order, so a line never appears behind one already read).
        """
        where, params = self._log_filter(query)
        rows = self._query(
            f"SELECT id, {LOG_COLUMNS} FROM logs WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            [*params, query.limit],
        )
        return [_log(r) for r in rows]

    def last_log_id(self) -> int:
        """The id of the line written last (0 when there is none)."""
        return int(self._query("SELECT COALESCE(MAX(id), 0) FROM logs")[0][0])

    def _log_filter(self, query: LogQuery) -> tuple[list[str], list[Any]]:
        where: list[str] = ["id > ?"]
        params: list[Any] = [query.after_id]
        if query.until_id is not None:
            where.append("id <= ?")
            params.append(query.until_id)
        if query.service:
            where.append("service = ?")
            params.append(query.service)
        if query.level:
            where.append("level_no >= ?")
            params.append(LEVELS[query.level])
        if query.trace_id:
            where.append("trace_id = ?")
            params.append(query.trace_id.lower())
        if query.since is not None:
            where.append("ts >= ?")
            params.append(time.time() - query.since)
        return where, params
