"""The embedded store: spans and log events in one local SQLite file (WAL mode), written off the
request path by several processes at once and read by the ``telemetry`` CLI.

The engine writes to it by default when nothing else is configured (``store.enabled: auto``):
spans when no span exporter is configured or passed in code, log events (next to the console)
when no file or Elasticsearch sink is configured and no sink is passed in code::

    store:
      path: ./.telemetry/telemetry.db   # TELEMETRY_STORE__PATH
      retention: 15d                    # pruned by the writers, at most once a minute
      enabled: auto                     # or true / false

Reading it from code::

    from telemetry_web.store import TracingManager, TraceQuery

    with TracingManager(".telemetry/telemetry.db") as store:
        for trace in store.list_traces(TraceQuery(service="orders", status="error")):
            print(trace.trace_id, store.get_trace(trace.trace_id))
"""

from __future__ import annotations

from ..config._model import StoreSettings
from ._db import SQLiteStore, StoreUnavailable
from ._query import (
    LogQuery,
    LogRecord,
    RouteStats,
    SpanRecord,
    StoreError,
    TraceQuery,
    TraceSummary,
    TracingManager,
)
from ._writers import StoreLogSink, StoreSpanExporter

__all__ = [
    "LogQuery",
    "LogRecord",
    "RouteStats",
    "SQLiteStore",
    "SpanRecord",
    "StoreError",
    "StoreLogSink",
    "StoreSpanExporter",
    "StoreUnavailable",
    "TraceQuery",
    "TraceSummary",
    "TracingManager",
    "store_for_logs",
    "store_for_spans",
]


def store_for_spans(settings: StoreSettings, *, other_exporters: bool) -> bool:
    """Whether spans go to the store: ``true``, or ``auto`` with no other exporter."""
    return settings.enabled == "true" or (settings.enabled == "auto" and not other_exporters)


def store_for_logs(settings: StoreSettings, *, other_sinks: bool) -> bool:
    """Whether log events go to the store: ``true``, or ``auto`` with no file, Elasticsearch
    or code-given sink (the console does not count: it is not kept)."""
    return settings.enabled == "true" or (settings.enabled == "auto" and not other_sinks)
