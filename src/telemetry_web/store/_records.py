"""What the store's readers return and take: the records, the queries, the trace page cursor,
and the decoding of a log row (its fields with what its columns hold put back)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ._codec import id_out, unpack
from ._rows import LEVEL_NAMES
from ._writers import COLUMN_KEYS, iso_time

__all__ = [
    "LEVELS",
    "LogQuery",
    "LogRecord",
    "RouteStats",
    "SpanRecord",
    "StoreError",
    "TracePage",
    "TraceQuery",
    "TraceSummary",
    "attribute_text",
    "decode_cursor",
    "encode_cursor",
    "existing_store",
    "log_record",
    "percentile",
]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class StoreError(Exception):
    """The store is missing, empty or not a telemetry-web store."""


def existing_store(path: str | os.PathLike[str]) -> str:
    """``path`` made absolute, once it is known to be a file a reader can open.

    Raises:
        StoreError: no file there, with what to do about it.
    """
    absolute = os.path.abspath(os.fspath(path))
    if not os.path.isfile(absolute):
        raise StoreError(
            f"no telemetry store at {absolute}: run the app with the store enabled first, "
            "or point --store (or TELEMETRY_STORE__PATH) at it"
        )
    return absolute


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


def attribute_text(packed: Any, key: str) -> str | None:
    """``CAST(json_extract(attributes, key) AS TEXT)`` of a packed attributes column."""
    value = unpack(packed, {}).get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def log_record(row: sqlite3.Row, strings: Any) -> LogRecord:
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


def encode_cursor(position: tuple[int, int]) -> str:
    return f"{position[0]}.{position[1]}"


def decode_cursor(cursor: str | None) -> tuple[int, int] | None:
    if not cursor:
        return None
    try:
        start, _, row = cursor.partition(".")
        return int(start), int(row)
    except ValueError:
        raise StoreError(f"not a trace page cursor: {cursor!r}") from None
