"""The embedded store: spans and log events in one local SQLite file (WAL mode), written off the
request path by several processes at once and read by the ``telemetry`` CLI.

The engine writes to it by default when nothing else is configured (``store.enabled: auto``):
spans when no span exporter is configured or passed in code, log events (next to the console)
when no file or Elasticsearch sink is configured and no sink is passed in code::

    store:
      path: ./.telemetry/telemetry.db   # TELEMETRY_STORE__PATH
      retention: 15d                    # pruned by the writers, at most once a minute
      max_size: 1GiB                    # past it, the oldest spans and log lines go first
      enabled: auto                     # or true / false

Reading it from code::

    from telemetry_web.store import TracingManager, TraceQuery

    with TracingManager(".telemetry/telemetry.db") as store:
        for trace in store.list_traces(TraceQuery(service="orders", status="error")):
            print(trace.trace_id, store.get_trace(trace.trace_id))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config._model import StoreSettings, TelemetrySettings
from ._db import SQLiteStore, StoreUnavailable
from ._metric_query import MetricFamily, MetricHistory, QueryRow
from ._metrics import METRICS_DROPPED, MetricSnapshotter, lock_path
from ._query import (
    LogQuery,
    LogRecord,
    RoutePoint,
    RouteStats,
    SpanRecord,
    StoreError,
    TracePage,
    TraceQuery,
    TraceSummary,
    TracingManager,
)
from ._writers import StoreLogSink, StoreSpanExporter

__all__ = [
    "LogQuery",
    "LogRecord",
    "MetricFamily",
    "MetricHistory",
    "MetricSnapshotter",
    "QueryRow",
    "RoutePoint",
    "RouteStats",
    "SQLiteStore",
    "SpanRecord",
    "StoreError",
    "StoreLogSink",
    "StoreSpanExporter",
    "StoreUnavailable",
    "TracePage",
    "TraceQuery",
    "TraceSummary",
    "TracingManager",
    "metric_history",
    "store_for_logs",
    "store_for_metrics",
    "store_for_spans",
]


def store_for_spans(settings: StoreSettings, *, other_exporters: bool) -> bool:
    """Whether spans go to the store: ``true``, or ``auto`` with no other exporter."""
    return settings.enabled == "true" or (settings.enabled == "auto" and not other_exporters)


def store_for_logs(settings: StoreSettings, *, other_sinks: bool) -> bool:
    """Whether log events go to the store: ``true``, or ``auto`` with no file, Elasticsearch
    or code-given sink (the console does not count: it is not kept)."""
    return settings.enabled == "true" or (settings.enabled == "auto" and not other_sinks)


def store_for_metrics(settings: TelemetrySettings) -> bool:
    """Whether the store keeps a metric history: ``true``, or ``auto`` with no metric backend
    (StatsD or an entry of ``metrics.exporters``) configured."""
    metrics, store = settings.metrics, settings.store
    if not metrics.enabled or store.enabled == "false":
        return False
    backend = bool(metrics.exporters) or metrics.collectors.statsd is not None
    return store.enabled == "true" or not backend


def metric_history(
    settings: TelemetrySettings,
    registry: Any,
    *,
    multiprocess_dir: str | None,
    metrics: Any,
) -> MetricSnapshotter | None:
    """The started snapshotter of a Telemetry's metrics (what ``/metrics`` shows: the merged
    worker files in multiprocess mode, else ``registry`` and prometheus-client's default one),
    or None when the store keeps no history. ``metrics`` is its MetricSet (drop counter)."""
    if not store_for_metrics(settings):
        return None
    from prometheus_client import REGISTRY

    from ..metrics._multiprocess import MultiprocessCollector

    collectors: Sequence[Any] = (
        [MultiprocessCollector(multiprocess_dir)]
        if multiprocess_dir is not None
        else [registry, REGISTRY]
    )
    prom = settings.metrics.collectors.prometheus
    interval = prom.scrape_interval if prom is not None else 15.0
    retention = prom.retention if prom is not None and prom.retention else None
    dropped = (
        metrics.builder("counter", METRICS_DROPPED)
        .with_description("Metric samples dropped before export, by exporter and reason.")
        .with_label_keys("exporter", "reason")
        .register()
    )
    snapshotter = MetricSnapshotter(
        collectors,
        store_path=settings.store.path,
        lock_file=lock_path(settings.store.path, settings.service, multiprocess_dir),
        interval=interval,
        retention=retention or settings.store.retention,
        busy_timeout=settings.store.busy_timeout,
        dropped=dropped,
    )
    snapshotter.start()
    return snapshotter
