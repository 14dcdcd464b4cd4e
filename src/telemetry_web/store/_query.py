"""Reading the store: :class:`TracingManager` answers the CLI's questions with indexed queries.

Readers open the file read-only; WAL mode lets them run while workers write. Every query walks
an index in the order it answers in and stops at its limit: traces newest first through the
start-time, service, route, error or trace-id index (keyset pages: ``TraceQuery.cursor``), route
percentiles by counting along the per-route latency index, log lines along the time index. The
UI's reads (text in log lines, slowest traces, a route's series) are in :mod:`._search`.

The queries are split by job: :mod:`._traces` (traces), :mod:`._routes` (route statistics),
:mod:`._log_reads` (log lines), on the connection of :mod:`._reader`; the records and queries
are in :mod:`._records`.
"""

from __future__ import annotations

from ._log_reads import LogReads
from ._records import (
    LogQuery,
    LogRecord,
    RouteStats,
    SpanRecord,
    StoreError,
    TracePage,
    TraceQuery,
    TraceSummary,
    percentile,
)
from ._routes import RouteReads
from ._search import RoutePoint

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
    "percentile",
]


class TracingManager(RouteReads, LogReads):
    """Queries over one store file (a store written by an older version is brought over to the
    current schema first, which needs write access once).

    Raises:
        StoreError: (from the constructor) the file does not exist or is not a store.
    """

    def __enter__(self) -> TracingManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
