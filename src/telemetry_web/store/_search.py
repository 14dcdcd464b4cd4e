"""The reads behind ``telemetry ui`` on the schema-4 tables: trace search by text in log lines,
the slowest traces of a route, a route's per-interval series and the known routes.

:class:`~telemetry_web.store.TracingManager` calls these with its read-only connection; each
walks an index in answer order and bounds what it reads.

Text in log lines: a line's fields are packed (:mod:`._codec`), so no SQL ``LIKE`` sees them.
A text search walks the lines newest first along the time index in slices of
:data:`TEXT_SLICE`, matching each line's ``event`` and the JSON text of its packed fields
(case-insensitive) in a SQL function; one page reads at most :data:`TEXT_SCAN` lines and, when
that budget runs out before the page is full, its cursor continues where it stopped. Slices
start at 1,000 lines and grow, and SQLite steps through each only as far as the page needs.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ._codec import _DICTIONARY, _FORMAT_DEFLATE_V1
from ._rows import KINDS, STATUSES

__all__ = [
    "SPAN_SLICE",
    "STATUS_CLASSES",
    "TEXT_SCAN",
    "TEXT_SLICE",
    "RoutePoint",
    "decode_log_cursor",
    "encode_log_cursor",
    "id_range",
    "register",
    "route_names",
    "route_series",
    "slowest_trace_ids",
    "text_trace_ids",
]

SPAN_SLICE = 50_000  # span rows searched per step of a bounded trace page
TEXT_SLICE = 5_000  # log lines matched per step of a text search
TEXT_SCAN = 20_000  # log lines read at most per page of a text search
STATUS_CLASSES = {"2xx": (200, 299), "3xx": (300, 399), "4xx": (400, 499), "5xx": (500, 599)}
_ERROR = STATUSES.index("error")
_SERVER = KINDS.index("server")

Query = Callable[[str, Sequence[Any]], list[sqlite3.Row]]


def _contains(event: str | None, fields: bytes | str | None, needle: str) -> bool:
    """Whether ``needle`` (lower case) is in the line's event or its fields' JSON text."""
    if event is not None and needle in event.lower():
        return True
    if fields is None:
        return False
    if isinstance(fields, str):  # a row written before packing
        return needle in fields.lower()
    if fields[0] != _FORMAT_DEFLATE_V1:
        return False
    d = zlib.decompressobj(-15, _DICTIONARY)
    text = d.decompress(fields[1:]) + d.flush()
    return needle in text.decode("utf-8", "replace").lower()


def register(conn: sqlite3.Connection) -> None:
    """The SQL functions these reads use, on a reader's connection."""
    conn.create_function("tw_contains", 3, _contains, deterministic=True)


def id_range(prefix: str) -> tuple[bytes, bytes]:
    """The lowest and highest 16-byte trace ids starting with a lower-case hex ``prefix``."""
    return bytes.fromhex(prefix.ljust(32, "0")), bytes.fromhex(prefix.ljust(32, "f"))


# A text page's cursor is its last log line's (ts, id); the float ts goes into the cursor as
# its IEEE bits (monotonic for positive floats), so the keyset compares exactly.
def encode_log_cursor(position: tuple[float, int]) -> str:
    return f"{struct.unpack('>Q', struct.pack('>d', position[0]))[0]}.{position[1]}"


def decode_log_cursor(position: tuple[int, int]) -> tuple[float, int]:
    ts = struct.unpack(">d", struct.pack(">Q", position[0] & (2**64 - 1)))[0]
    return float(ts), position[1]


def text_trace_ids(
    query: Query,
    lazy: Callable[[str, Sequence[Any]], Iterator[sqlite3.Row]],
    *,
    text: str,
    span_where: Sequence[str],
    span_params: Sequence[Any],
    start: float | None,
    end: float | None,
    cursor: tuple[float, int] | None,
    limit: int,
) -> tuple[list[bytes], tuple[float, int] | None]:
    """The traces of the newest log lines holding ``text`` that have a span matching
    ``span_where``, by their newest such line, after ``cursor``; and the next page's cursor
    (None when every line was read)."""
    needle = text.lower()
    time_where, time_params = ["1 = 1"], []
    if start is not None:
        time_where.append("ts >= ?")
        time_params.append(start)
    if end is not None:
        time_where.append("ts < ?")
        time_params.append(end)
    found: dict[bytes, None] = {}
    skipped: set[Any] = set()
    position, scanned, size = cursor, 0, 1000
    while len(found) < limit and scanned < TEXT_SCAN:
        size = min(size, TEXT_SLICE, TEXT_SCAN - scanned)
        where, params = list(time_where), list(time_params)
        if position is not None:
            where.append("ts <= ? AND (ts < ? OR id < ?)")
            params.extend([position[0], position[0], position[1]])
        bound = query(
            f"SELECT ts, id FROM log_rows INDEXED BY log_rows_ts WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC, id DESC LIMIT 1 OFFSET ?",
            [*params, size - 1],
        )
        if bound:
            where.append("ts >= ? AND (ts > ? OR id >= ?)")
            params.extend([bound[0][0], bound[0][0], bound[0][1]])
        # the span check (an index lookup) before the text (a decompression)
        rows = lazy(
            f"SELECT l.id, l.ts, l.trace_id FROM log_rows l INDEXED BY log_rows_ts WHERE "
            f"{' AND '.join(where)} AND l.trace_id IS NOT NULL AND EXISTS (SELECT 1 FROM "
            "span_rows INDEXED BY span_rows_trace WHERE substr(trace_id, 1, 8) = "
            f"substr(l.trace_id, 1, 8) AND trace_id = l.trace_id AND {' AND '.join(span_where)}) "
            "AND tw_contains(l.event, l.fields, ?) ORDER BY l.ts DESC, l.id DESC",
            [*params, *span_params, needle],
        )
        for row in rows:
            position = (row["ts"], row["id"])
            trace = row["trace_id"]
            if trace in found or trace in skipped:
                continue
            if cursor is not None and _line_before(query, trace, needle, time_where,
                                                   time_params, cursor):  # fmt: skip
                skipped.add(trace)  # listed on an earlier page
                continue
            found[trace] = None
            if len(found) == limit:
                return list(found), position
        if not bound:
            return list(found), None  # every line read
        position = (bound[0][0], bound[0][1])
        scanned, size = scanned + size, size * 4
    return list(found), position


def _line_before(
    query: Query,
    trace: bytes,
    needle: str,
    where: Sequence[str],
    params: Sequence[Any],
    cursor: tuple[float, int],
) -> bool:
    """Whether a matching line of the trace comes at or before the cursor (newest first)."""
    rows = query(
        "SELECT 1 FROM log_rows INDEXED BY log_rows_trace WHERE substr(trace_id, 1, 8) = ? "
        "AND trace_id = ? AND trace_id IS NOT NULL AND "
        f"{' AND '.join(where)} AND (ts > ? OR (ts = ? AND id >= ?)) AND "
        "tw_contains(event, fields, ?) LIMIT 1",
        [trace[:8], trace, *params, cursor[0], cursor[0], cursor[1], needle],
    )
    return bool(rows)


def slowest_trace_ids(rows: Any, limit: int) -> list[bytes]:
    """The first ``limit`` distinct trace ids of ``rows`` (an open cursor, slowest first): the
    cursor is read lazily and left as soon as they are found."""
    found: dict[bytes, None] = {}
    for row in rows:
        found.setdefault(row[0], None)
        if len(found) == limit:
            break
    return list(found)


SLOWEST_SQL = (
    f"SELECT trace_id FROM span_rows WHERE kind = {_SERVER} AND route = ? AND service = ? "
    "AND start_ns >= ? AND start_ns < ? ORDER BY duration_ns DESC"
)


@dataclass(frozen=True)
class RoutePoint:
    """One interval of a route's series: requests per second, error ratio, p50/p95/p99 (s)."""

    start: float
    end: float
    rate: float
    error_ratio: float
    p50: float
    p95: float
    p99: float

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__}


# One pass over the route's entries of the per-route latency index: it holds every column
# used (a covering scan) and gives them by duration, so each interval's list comes sorted.
_SERIES_SQL = (
    "SELECT start_ns, duration_ns, status FROM span_rows INDEXED BY span_rows_route "
    f"WHERE kind = {_SERVER} AND route = ? AND service = ? AND start_ns >= ? AND start_ns < ? "
    "ORDER BY duration_ns"
)


def _nearest_rank(durations: list[int], q: int) -> float:
    return durations[max(1, -(-len(durations) * q // 100)) - 1] / 1e9


def route_series(
    query: Query, service: int, route: int, start: float, end: float, step: float
) -> list[RoutePoint]:
    """One point per ``step`` seconds in [start, end) that had requests."""
    start_ns, step_ns = int(start * 1e9), max(1, int(step * 1e9))
    buckets: dict[int, tuple[list[int], list[int]]] = {}
    for row in query(_SERIES_SQL, [route, service, start_ns, int(end * 1e9)]):
        index = (row[0] - start_ns) // step_ns
        found = buckets.get(index)
        if found is None:
            found = buckets[index] = ([], [0])
        found[0].append(row[1])
        found[1][0] += row[2] == _ERROR
    points = []
    for b in sorted(buckets):
        durations, errors = buckets[b]
        points.append(
            RoutePoint(
                start=start + b * step,
                end=start + (b + 1) * step,
                rate=len(durations) / step,
                error_ratio=errors[0] / len(durations),
                p50=_nearest_rank(durations, 50),
                p95=_nearest_rank(durations, 95),
                p99=_nearest_rank(durations, 99),
            )
        )
    return points


def route_names(query: Query, since_ns: int | None) -> list[tuple[int, int, bool]]:
    """The (service, route or name, is a name) string ids of the server spans started since
    ``since_ns``: routed ones found by skipping along the per-route index one pair at a time,
    the rare route-less ones (not HTTP) by name."""
    recent, params = ("", []) if since_ns is None else (" AND start_ns >= ?", [since_ns])
    pairs: list[tuple[int, int, bool]] = []
    last: tuple[int, int] | None = None
    first = f"SELECT route, service FROM span_rows WHERE kind = {_SERVER} AND "
    while True:
        # the next service of this route, else the first of the next route: two seeks (a
        # row-value range would seek by route only and walk the pair's entries)
        if last is None:
            rows = query(f"{first}route IS NOT NULL ORDER BY route, service LIMIT 1", [])
        else:
            rows = query(f"{first}route = ? AND service > ? ORDER BY service LIMIT 1", last)
            rows = rows or query(f"{first}route > ? ORDER BY route, service LIMIT 1", last[:1])
        if not rows:
            break
        last = (rows[0][0], rows[0][1])
        if since_ns is None or query(
            f"SELECT 1 FROM span_rows WHERE kind = {_SERVER} AND route = ? AND service = ?"
            f"{recent} LIMIT 1",
            [last[0], last[1], *params],
        ):
            pairs.append((last[1], last[0], False))
    rows = query(
        f"SELECT DISTINCT service, name FROM span_rows WHERE kind = {_SERVER} AND route IS NULL"
        f"{recent}",
        params,
    )
    pairs.extend((r[0], r[1], True) for r in rows)
    return pairs
