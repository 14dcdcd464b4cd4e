"""The stored form of span and log rows (schema 4), the copy of older stores, and size pruning.

Writers hand :class:`~telemetry_web.store.SQLiteStore` rows in the column order of the views
``spans`` and ``logs`` (``SPAN_COLUMNS``/``LOG_COLUMNS``: hex ids, texts, JSON). They are kept
as ``span_rows``/``log_rows``: names, services, routes and loggers as ids into ``strings``, each
distinct resource once in ``resources``, attributes, events and log fields packed
(:mod:`._codec`), ids as bytes, and a log line's fields without what its columns hold.

Rows keep insertion order in their ``INTEGER PRIMARY KEY``, so a batch appends to the table and
to the time-ordered indexes; the trace id index is the one random-order index.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from typing import Any

from .. import semconv as sc
from ._codec import id_in, pack

__all__ = [
    "KINDS",
    "LEVEL_NAMES",
    "STATUSES",
    "Interner",
    "SizeReporter",
    "copy_old_tables",
    "log_values",
    "prune_to_size",
    "rename_old_tables",
    "span_values",
    "used_bytes",
]

KINDS = ("internal", "server", "client", "producer", "consumer")
STATUSES = ("unset", "ok", "error")
_KIND = {k: i for i, k in enumerate(KINDS)}
_STATUS = {s: i for i, s in enumerate(STATUSES)}
# A log row's level text is NULL when it is the name of its level number.
LEVEL_NAMES = {10: "debug", 20: "info", 30: "warning", 40: "error", 50: "critical"}


class Interner:
    """Ids of ``strings`` values and ``resources`` per connection; the entries a transaction
    added are kept only once it commits."""

    def __init__(self) -> None:
        self.conn: sqlite3.Connection | None = None
        self._known: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[str, str], int] = {}

    def begin(self, conn: sqlite3.Connection) -> None:
        if conn is not self.conn:  # another file or process: its ids are its own
            self.conn, self._known = conn, {}
        self._pending = {}

    def committed(self) -> None:
        self._known.update(self._pending)
        self._pending = {}

    def id(self, table: str, value: str) -> int:
        key = (table, value)
        found = self._known.get(key) or self._pending.get(key)
        if found is not None:
            return found
        assert self.conn is not None
        column = "value" if table == "strings" else "attributes"
        row = self.conn.execute(f"SELECT id FROM {table} WHERE {column} = ?", (value,)).fetchone()
        if row is None:
            row = self.conn.execute(
                f"INSERT INTO {table} ({column}) VALUES (?) RETURNING id", (value,)
            ).fetchone()
        self._pending[key] = int(row[0])
        return int(row[0])

    def maybe(self, value: Any) -> int | None:
        return None if value is None else self.id("strings", str(value))


def span_values(row: tuple[Any, ...], ids: Interner) -> tuple[Any, ...]:
    """A ``span_rows`` row from a ``spans`` row (``SPAN_COLUMNS`` order)."""
    (trace_id, span_id, parent_id, name, kind, service, route, http_status, start_ns,
     duration_ns, status, status_message, attributes, events, resource) = row  # fmt: skip
    if route is None and kind == "server" and sc.ATTR_HTTP_METHOD in json.loads(attributes):
        route = sc.ROUTE_UNMATCHED  # a row from before the store kept `<unmatched>`
    return (
        bytes.fromhex(trace_id),
        bytes.fromhex(span_id),
        None if parent_id is None else bytes.fromhex(parent_id),
        ids.id("strings", name),
        _KIND.get(kind, 0),
        ids.id("strings", service),
        ids.maybe(route),
        http_status,
        start_ns,
        duration_ns,
        _STATUS.get(status, 0),
        status_message,
        pack(attributes),
        pack(events),
        ids.id("resources", resource),
    )


def log_values(row: tuple[Any, ...], ids: Interner) -> tuple[Any, ...]:
    """A ``log_rows`` row from a ``logs`` row (``LOG_COLUMNS`` order)."""
    ts, level, level_no, logger, service, event, trace_id, span_id, request_id, fields = row
    return (
        ts,
        None if LEVEL_NAMES.get(level_no) == level else level, level_no, ids.maybe(logger),
        ids.maybe(service), event, id_in(trace_id),
        id_in(span_id), id_in(request_id), pack(fields),
    )  # fmt: skip


SPAN_ROW_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, service, route, http_status, start_ns, "
    "duration_ns, status, status_message, attributes, events, resource"
)
LOG_ROW_COLUMNS = (
    "ts, level, level_no, logger, service, event, trace_id, span_id, request_id, fields"
)


# --- stores written before schema 4 ------------------------------------------------------------


def rename_old_tables(conn: sqlite3.Connection) -> bool:
    """Move a schema 1-3 store's ``spans`` and ``logs`` tables aside (inside the caller's
    transaction) so that the views can take their names; whether there were any."""
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('spans', 'logs')"
        )
    }
    for name in sorted(tables):
        conn.execute(f"ALTER TABLE {name} RENAME TO old_{name}")
    return bool(tables)


_OLD_ROUTE = (
    "COALESCE(route, CASE WHEN kind = 'server' AND "
    f"json_extract(attributes, '$.\"{sc.ATTR_HTTP_METHOD}\"') IS NOT NULL "
    f"THEN '{sc.ROUTE_UNMATCHED}' END)"
)


def copy_old_tables(conn: sqlite3.Connection) -> None:
    """Copy ``old_spans``/``old_logs`` into the new tables in their order (ids kept) and drop
    them. Attributes, events and fields stay plain JSON text, which the readers also read."""
    conn.create_function("tw_id", 1, id_in, deterministic=True)
    conn.execute(
        "INSERT OR IGNORE INTO strings (value) SELECT name FROM old_spans UNION "
        f"SELECT service FROM old_spans UNION SELECT {_OLD_ROUTE} FROM old_spans "
        "WHERE route IS NOT NULL OR kind = 'server' UNION "
        "SELECT logger FROM old_logs WHERE logger IS NOT NULL UNION "
        "SELECT service FROM old_logs WHERE service IS NOT NULL"
    )
    conn.execute("INSERT OR IGNORE INTO resources (attributes) SELECT resource FROM old_spans")
    kind = " ".join(f"WHEN '{k}' THEN {i}" for i, k in enumerate(KINDS))
    status = " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STATUSES))
    conn.execute(
        f"INSERT INTO span_rows (id, {SPAN_ROW_COLUMNS}) SELECT o.id, tw_id(trace_id), "
        "tw_id(span_id), tw_id(parent_id), (SELECT id FROM strings WHERE value = o.name), "
        f"CASE kind {kind} ELSE 0 END, (SELECT id FROM strings WHERE value = o.service), "
        f"(SELECT id FROM strings WHERE value = {_OLD_ROUTE}), http_status, start_ns, "
        f"duration_ns, CASE status {status} ELSE 0 END, status_message, "
        "NULLIF(attributes, '{}'), NULLIF(events, '[]'), "
        "(SELECT id FROM resources WHERE attributes = o.resource) FROM old_spans o ORDER BY id"
    )
    conn.execute(
        f"INSERT INTO log_rows (id, {LOG_ROW_COLUMNS}) SELECT o.id, ts, level, level_no, "
        "(SELECT id FROM strings WHERE value = o.logger), "
        "(SELECT id FROM strings WHERE value = o.service), event, tw_id(trace_id), "
        "tw_id(span_id), tw_id(request_id), fields FROM old_logs o ORDER BY id"
    )
    conn.execute("DROP TABLE old_spans")
    conn.execute("DROP TABLE old_logs")


# --- retention by size -------------------------------------------------------------------------


def used_bytes(conn: sqlite3.Connection) -> int:
    """The bytes the file's pages hold (free pages, reused by the next inserts, left out)."""
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def prune_to_size(conn: sqlite3.Connection, max_size: int, used: int) -> tuple[int, int]:
    """Delete the oldest spans and log lines (by insertion) so that about 10% of ``max_size``
    is free again; the numbers of spans and log lines deleted."""
    share = min(1.0, (used - max_size * 0.9) / used)
    deleted = []
    for table in ("span_rows", "log_rows"):
        low, high = conn.execute(f"SELECT MIN(id), MAX(id) FROM {table}").fetchone()
        if low is None:
            deleted.append(0)
            continue
        cut = low + max(1, int((high - low + 1) * share))
        deleted.append(conn.execute(f"DELETE FROM {table} WHERE id < ?", (cut,)).rowcount)
    return deleted[0], deleted[1]


class SizeReporter:
    """One stderr line per store file per report period when rows were pruned for size."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._deleted: dict[str, list[int]] = {}

    def pruned(self, path: str, max_size: int, spans: int, logs: int) -> None:
        with self._lock:
            counts = self._deleted.setdefault(path, [0, 0])
            counts[0] += spans
            counts[1] += logs
            now = time.monotonic()
            if now - self._last.get(path, float("-inf")) < self.every:
                return
            self._last[path] = now
            spans, logs = counts
            counts[0] = counts[1] = 0
        print(
            f"telemetry-web: Store reached store.max_size ({_size(max_size)}): deleted the "
            f"oldest {spans} spans and {logs} log lines ({path}); next report in "
            f"{int(self.every)}s at the earliest",
            file=sys.stderr,
            flush=True,
        )

    def reset(self) -> None:
        with self._lock:
            self._last.clear()
            self._deleted.clear()


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"
