"""The read-only connection every store reader shares: opening (and upgrading) the file, the
query helpers that turn SQLite errors into :class:`StoreError`, the caches of strings and
resources, and a span row decoded into a :class:`SpanRecord`."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from .. import semconv as sc
from ._codec import id_out, unpack
from ._db import SQLiteStore, stored_route
from ._records import SpanRecord, StoreError, attribute_text, existing_store
from ._rows import KINDS, STATUSES
from ._search import register

__all__ = ["ERROR", "LOG_SELECT", "SERVER", "SPAN_SELECT", "StoreReader"]

SPAN_SELECT = (
    "SELECT id, trace_id, span_id, parent_id, name, kind, service, route, http_status, "
    "start_ns, duration_ns, status, status_message, attributes, events, resource FROM span_rows"
)
LOG_SELECT = (
    "SELECT id, ts, level, level_no, logger, service, event, trace_id, span_id, request_id, fields "
    "FROM log_rows"
)
ERROR = STATUSES.index("error")
SERVER = KINDS.index("server")


class StoreReader:
    """The read-only connection to one store file (a store written by an older version is
    brought over to the current schema first, which needs write access once).

    Raises:
        StoreError: (from the constructor) the file does not exist or is not a store.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = existing_store(path)
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
            self._conn.create_function("tw_attr", 2, attribute_text, deterministic=True)
            register(self._conn)
            return {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

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
