"""Log reads: the newest matching lines along the time index, and the lines written after an
id (``logs tail --follow``)."""

from __future__ import annotations

import time
from typing import Any

from ._codec import id_in
from ._reader import LOG_SELECT, StoreReader
from ._records import LEVELS, LogQuery, LogRecord, log_record

__all__ = ["LogReads"]


class LogReads(StoreReader):
    """The log queries of :class:`~telemetry_web.store.TracingManager`."""

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
            f"{LOG_SELECT} WHERE {' AND '.join(where)} ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, query.limit],
        )
        return [log_record(r, self._string) for r in reversed(rows)]

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
            f"{LOG_SELECT} WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            [*params, query.limit],
        )
        return [log_record(r, self._string) for r in rows]

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
