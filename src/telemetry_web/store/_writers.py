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
from datetime import datetime, timezone
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import semconv as sc
from ._db import DEFAULT_MAX_SIZE, SQLiteStore, StoreUnavailable, stored_route

__all__ = ["COLUMN_KEYS", "StoreLogSink", "StoreSpanExporter", "iso_time", "log_row", "span_row"]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def span_row(span: ReadableSpan) -> tuple[Any, ...]:
    """The ``spans`` row of one finished span."""
    context = span.context
    assert context is not None  # the batch processor only queues sampled spans, with a context
    attributes = dict(span.attributes or {})
    resource = _resource_json(span.resource)
    start = span.start_time or 0
    end = span.end_time or start
    events = [
        {"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})}
        for e in span.events
    ]
    status_code = attributes.get(sc.ATTR_HTTP_STATUS)
    kind = span.kind.name.lower()
    route = stored_route(kind, attributes)
    # kept once, in the route and http_status columns (the readers put them back)
    if route is not None and attributes.get(sc.ATTR_HTTP_ROUTE) == route:
        del attributes[sc.ATTR_HTTP_ROUTE]
    if isinstance(status_code, int) and not isinstance(status_code, bool):
        del attributes[sc.ATTR_HTTP_STATUS]
    return (
        _hex(context.trace_id, 32),
        _hex(context.span_id, 16),
        _hex(span.parent.span_id, 16) if span.parent is not None else None,
        span.name,
        kind,
        resource[0],
        route,
        status_code if isinstance(status_code, int) and not isinstance(status_code, bool) else None,
        start,
        max(0, end - start),
        span.status.status_code.name.lower(),
        span.status.description,
        _dumps(attributes),
        _dumps(events),
        resource[1],
    )


_RESOURCES: dict[int, tuple[Any, tuple[str, str]]] = {}


def _resource_json(resource: Any) -> tuple[str, str]:
    """The service name and JSON of a span's resource, encoded once per Resource object (a
    provider's spans share one; the object is kept so that its id is not reused)."""
    cached = _RESOURCES.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    attributes = dict(resource.attributes) if resource is not None else {}
    found = (str(attributes.get("service.name", "unknown_service")), _dumps(attributes))
    if len(_RESOURCES) > 64:
        _RESOURCES.clear()
    _RESOURCES[id(resource)] = (resource, found)
    return found


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


# The keys a log row's columns hold: left out of its ``fields`` when the column holds the same
# text (the readers put them back; see ``_query._log``).
COLUMN_KEYS = ("level", "event", "logger", "service", "trace_id", "span_id", "request_id")


def log_row(event: dict[str, Any]) -> tuple[Any, ...]:
    """The ``logs`` row of one finished event; ``fields`` holds the rest of the event: the
    keys its columns hold are left out, the timestamp too when ``iso_time`` gives it back."""
    level = str(event.get("level", "info")).lower()
    ts = _epoch(event.get("timestamp"))
    columns = (
        level,
        _text(event.get("event")),
        _text(event.get("logger")),
        _text(event.get("service")),
        _text(event.get("trace_id")),
        _text(event.get("span_id")),
        _text(event.get("request_id")),
    )
    rest = {
        k: v
        for k, v in event.items()
        if not (k in _COLUMN_INDEX and v == columns[_COLUMN_INDEX[k]])
        and not (k == "timestamp" and v == iso_time(ts))
    }
    level, name, logger, service, trace_id, span_id, request_id = columns
    return (
        ts, level, _LEVELS.get(level, 20), logger, service, name, trace_id, span_id,
        request_id, _dumps(rest),
    )  # fmt: skip


_COLUMN_INDEX = {k: i for i, k in enumerate(COLUMN_KEYS)}


def iso_time(ts: float) -> str:
    """The log pipeline's timestamp text of an epoch time: UTC, milliseconds, ``Z``."""
    millis = round(ts * 1000)
    return (
        datetime.fromtimestamp(millis // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        + f".{millis % 1000:03d}Z"
    )


class StoreSpanExporter(SpanExporter):
    """Writes each batch of spans in one transaction; FAILURE while the store is unavailable."""

    def __init__(
        self,
        path: str,
        *,
        retention: float,
        busy_timeout: float = 5.0,
        max_size: int | None = DEFAULT_MAX_SIZE,
    ) -> None:
        self.store = SQLiteStore(
            path, retention=retention, busy_timeout=busy_timeout, max_size=max_size
        )
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
        self,
        path: str,
        *,
        retention: float,
        busy_timeout: float = 5.0,
        max_size: int | None = DEFAULT_MAX_SIZE,
        dropped: Any = None,
    ) -> None:
        self.store = SQLiteStore(
            path, retention=retention, busy_timeout=busy_timeout, max_size=max_size
        )
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
