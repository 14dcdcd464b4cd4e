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
from collections.abc import Sequence
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
    "insert",
    "prepare_log",
    "prepare_span",
    "prune_to_size",
    "rename_old_tables",
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
        self._known: dict[str, dict[str, int]] = {"strings": {}, "resources": {}}
        self._pending: dict[str, dict[str, int]] = {"strings": {}, "resources": {}}

    def begin(self, conn: sqlite3.Connection) -> None:
        if conn is not self.conn:  # another file or process: its ids are its own
            self.conn = conn
            self._known = {"strings": {}, "resources": {}}
        self._pending = {"strings": {}, "resources": {}}

    def committed(self) -> None:
        for table, pending in self._pending.items():
            self._known[table].update(pending)
        self._pending = {"strings": {}, "resources": {}}

    def id(self, table: str, value: str) -> int:
        found = self._known[table].get(value)
        if found is not None:
            return found
        found = self._pending[table].get(value)
        if found is not None:
            return found
        assert self.conn is not None
        column = "value" if table == "strings" else "attributes"
        row = self.conn.execute(f"SELECT id FROM {table} WHERE {column} = ?", (value,)).fetchone()
        if row is None:
            row = self.conn.execute(
                f"INSERT INTO {table} ({column}) VALUES (?) RETURNING id", (value,)
            ).fetchone()
        self._pending[table][value] = int(row[0])
        return int(row[0])

    def maybe(self, value: Any) -> int | None:
        return None if value is None else self.id("strings", str(value))

    def spans(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``span_rows`` rows from prepared ones (:func:`prepare_span`): names, services,
        routes and resources as ids."""
        strings, resources = self._known["strings"], self._known["resources"]
        out = []
        for r in rows:
            name, service, route, resource = r[3], r[5], r[6], r[14]
            out.append(
                (r[0], r[1], r[2], strings.get(name) or self.id("strings", name), r[4],
                 strings.get(service) or self.id("strings", service),
                 None if route is None else strings.get(route) or self.id("strings", route),
                 r[7], r[8], r[9], r[10], r[11], r[12], r[13],
                 resources.get(resource) or self.id("resources", resource))
            )  # fmt: skip
        return out

    def logs(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``log_rows`` rows from prepared ones (:func:`prepare_log`): loggers and services
        as ids."""
        strings = self._known["strings"]
        out = []
        for r in rows:
            logger, service = r[3], r[4]
            out.append(
                (r[0], r[1], r[2],
                 None if logger is None else strings.get(logger) or self.id("strings", logger),
                 None if service is None else strings.get(service) or self.id("strings", service),
                 r[5], r[6], r[7], r[8], r[9])
            )  # fmt: skip
        return out


def prepare_span(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A span row in the stored form from a ``spans`` row (``SPAN_COLUMNS`` order), but for the
    name, service, route and resource, still texts (:meth:`Interner.spans` makes them ids)."""
    (trace_id, span_id, parent_id, name, kind, service, route, http_status, start_ns,
     duration_ns, status, status_message, attributes, events, resource) = row  # fmt: skip
    if route is None and kind == "server" and sc.ATTR_HTTP_METHOD in json.loads(attributes):
        route = sc.ROUTE_UNMATCHED  # a row from before the store kept `<unmatched>`
    return (
        bytes.fromhex(trace_id),
        bytes.fromhex(span_id),
        None if parent_id is None else bytes.fromhex(parent_id),
        name,
        _KIND.get(kind, 0),
        service,
        None if route is None else str(route),
        http_status,
        start_ns,
        duration_ns,
        _STATUS.get(status, 0),
        status_message,
        pack(attributes),
        pack(events),
        resource,
    )


def prepare_log(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A log row in the stored form from a ``logs`` row (``LOG_COLUMNS`` order), but for the
    logger and service, still texts (:meth:`Interner.logs` makes them ids)."""
    ts, level, level_no, logger, service, event, trace_id, span_id, request_id, fields = row
    return (
        ts,
        None if LEVEL_NAMES.get(level_no) == level else level, level_no, _text(logger),
        _text(service), event, id_in(trace_id), id_in(span_id), id_in(request_id), pack(fields),
    )  # fmt: skip


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


SPAN_ROW_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, service, route, http_status, start_ns, "
    "duration_ns, status, status_message, attributes, events, resource"
)
LOG_ROW_COLUMNS = (
    "ts, level, level_no, logger, service, event, trace_id, span_id, request_id, fields"
)
# Rows per INSERT statement: a batch goes in as a few multi-row statements (one SQLite step
# each, so the writer gives the GIL away a few times per batch instead of once per row).
_CHUNKS = (128, 64, 32, 16, 8, 4, 2, 1)


def insert(conn: sqlite3.Connection, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (tuples of the columns' width) into ``table`` in a few statements."""
    if not rows:
        return
    width = len(rows[0])
    values = "(" + ", ".join("?" * width) + ")"
    done = 0
    for size in _CHUNKS:
        count = (len(rows) - done) // size
        if not count:
            continue
        sql = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([values] * size)
        for _ in range(count):
            conn.execute(sql, [v for row in rows[done : done + size] for v in row])
            done += size


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
    pages, free, size = conn.execute(
        "SELECT p.page_count, f.freelist_count, s.page_size FROM pragma_page_count() p, "
        "pragma_freelist_count() f, pragma_page_size() s"
    ).fetchone()
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
