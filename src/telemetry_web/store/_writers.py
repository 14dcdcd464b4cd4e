"""The span exporter and the log sink that write to the store, both off the request path.

The exporter sits behind the engine's :class:`~telemetry_web.tracing._batch.BoundedBatchProcessor`
(bounded queue, batches, drops counted as ``export_failed`` when it returns FAILURE); the sink
is called by the log pipeline's writer thread with a batch. While the store is unavailable the
sink counts its own drops (``telemetry_log_events_dropped_total{sink="store",
reason="store_unavailable"}``), like the Elasticsearch sink: raising would add the pipeline's
own "Log shipping failed" line next to the one ``Log store unavailable`` line per period.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._db import SQLiteStore, StoreUnavailable, stored_route

__all__ = ["StoreLogSink", "StoreSpanExporter", "log_row", "span_row"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_row(span: ReadableSpan) -> tuple[Any, ...]:
    """The ``spans`` row of one finished span."""
    context = span.context
    assert context is not None  # the batch processor only queues sampled spans, with a context
    attributes = dict(span.attributes or {})
    resource = dict(span.resource.attributes) if span.resource is not None else {}
    start = span.start_time or 0
    end = span.end_time or start
    events = [
        {"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})}
        for e in span.events
    ]
    status_code = attributes.get("http.response.status_code")
    kind = span.kind.name.lower()
    route = stored_route(kind, attributes)
    return (
        _hex(context.trace_id, 32),
        _hex(context.span_id, 16),
        _hex(span.parent.span_id, 16) if span.parent is not None else None,
        span.name,
        kind,
        str(resource.get("service.name", "unknown_service")),
        route,
        int(status_code) if isinstance(status_code, int) else None,
        start,
        max(0, end - start),
        span.status.status_code.name.lower(),
        span.status.description,
        _dumps(attributes),
        _dumps(events),
        _dumps(resource),
    )


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    import time

    return time.time()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def log_row(event: dict[str, Any]) -> tuple[Any, ...]:
    """The ``logs`` row of one finished event (the whole event is kept in ``fields``)."""
    level = str(event.get("level", "info")).lower()
    return (
        _epoch(event.get("timestamp")),
        level,
        _LEVELS.get(level, 20),
        _text(event.get("logger")),
        _text(event.get("service")),
        _text(event.get("event")),
        _text(event.get("trace_id")),
        _text(event.get("span_id")),
        _text(event.get("request_id")),
        _dumps(event),
    )


class StoreSpanExporter(SpanExporter):
    """Writes each batch of spans in one transaction; FAILURE while the store is unavailable."""

    def __init__(self, path: str, *, retention: float, busy_timeout: float = 5.0) -> None:
        self.store = SQLiteStore(path, retention=retention, busy_timeout=busy_timeout)
        self.endpoint = self.store.path  # named in the batch processor's failure line

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.write(spans=[span_row(s) for s in spans])
        except StoreUnavailable:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self.store.close()


class StoreLogSink:
    """Writes each batch of log events in one transaction; counts what it cannot write."""

    name = "store"

    def __init__(
        self, path: str, *, retention: float, busy_timeout: float = 5.0, dropped: Any = None
    ) -> None:
        self.store = SQLiteStore(path, retention=retention, busy_timeout=busy_timeout)
        self._dropped = dropped.labels("store", "store_unavailable") if dropped else None

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        try:
            self.store.write(logs=[log_row(e) for e in events])
        except StoreUnavailable:
            if self._dropped is None:
                raise  # no counter of our own: the pipeline counts it as a sink error
            self._dropped.inc(len(events))

    def close(self) -> None:
        self.store.close()
