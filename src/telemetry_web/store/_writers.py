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
import threading
import weakref
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from .. import semconv as sc
from ._codec import id_in, pack
from ._db import DEFAULT_MAX_SIZE, SQLiteStore, StoreUnavailable, stored_route
from ._rows import KINDS, LEVEL_NAMES, STATUSES

__all__ = [
    "COLUMN_KEYS",
    "StoreLogSink",
    "StoreSpanExporter",
    "iso_time",
    "log_row",
    "prepared_log",
    "prepared_span",
    "shared_store",
    "span_row",
]

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_dumps = json.JSONEncoder(default=str, ensure_ascii=False).encode


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _span_parts(span: ReadableSpan) -> tuple[dict[str, Any], str, str | None, int | None]:
    """A span's attributes without what its columns hold, kind, route and HTTP status."""
    attributes = dict(span.attributes or {})
    status_code = attributes.get(sc.ATTR_HTTP_STATUS)
    kind = span.kind.name.lower()
    route = stored_route(kind, attributes)
    # kept once, in the route and http_status columns (the readers put them back)
    if route is not None and attributes.get(sc.ATTR_HTTP_ROUTE) == route:
        del attributes[sc.ATTR_HTTP_ROUTE]
    if isinstance(status_code, int) and not isinstance(status_code, bool):
        del attributes[sc.ATTR_HTTP_STATUS]
    else:
        status_code = None
    return attributes, kind, route, status_code


def _events(span: ReadableSpan) -> list[dict[str, Any]]:
    return [
        {"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})}
        for e in span.events
    ]


def span_row(span: ReadableSpan) -> tuple[Any, ...]:
    """The ``spans`` row of one finished span."""
    context = span.context
    assert context is not None  # the batch processor only queues sampled spans, with a context
    attributes, kind, route, status_code = _span_parts(span)
    resource = _resource_json(span.resource)
    start = span.start_time or 0
    end = span.end_time or start
    return (
        _hex(context.trace_id, 32),
        _hex(context.span_id, 16),
        _hex(span.parent.span_id, 16) if span.parent is not None else None,
        span.name,
        kind,
        resource[0],
        route,
        status_code,
        start,
        max(0, end - start),
        span.status.status_code.name.lower(),
        span.status.description,
        _dumps(attributes),
        _dumps(_events(span)),
        resource[1],
    )


_KIND_NUMBER = {k: KINDS.index(k.name.lower()) for k in SpanKind}
_STATUS_NUMBER = {s: STATUSES.index(s.name.lower()) for s in StatusCode}


def prepared_span(span: ReadableSpan) -> tuple[Any, ...]:
    """:func:`span_row` straight in the stored form (:func:`._rows.prepare_span`): byte ids,
    numbers, packed JSON; no hex or JSON text in between."""
    context = span.context
    assert context is not None
    attributes, _kind, route, status_code = _span_parts(span)
    service, resource = _resource_json(span.resource)
    start = span.start_time or 0
    end = span.end_time or start
    parent = span.parent
    return (
        context.trace_id.to_bytes(16, "big"),
        context.span_id.to_bytes(8, "big"),
        None if parent is None else parent.span_id.to_bytes(8, "big"),
        span.name,
        _KIND_NUMBER.get(span.kind, 0),
        service,
        route,
        status_code,
        start,
        max(0, end - start),
        _STATUS_NUMBER.get(span.status.status_code, 0),
        span.status.description,
        pack(_dumps(attributes)) if attributes else None,
        pack(_dumps(_events(span))) if span.events else None,
        resource,
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
        found = _pipeline_time(value)
        if found is not None:
            return found
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    import time

    return time.time()


_SECONDS: dict[str, int] = {}  # "2026-12-07T11:30:00" -> its epoch second


def _pipeline_time(value: str) -> float | None:
    """The epoch time of a timestamp in the form :func:`iso_time` gives (the log pipeline's),
    from a cache of the second it names; None for any other text."""
    millis = value[20:23]
    if len(value) != 24 or value[19] != "." or value[23] != "Z":
        return None
    if not (millis.isascii() and millis.isdigit()):
        return None
    prefix = value[:19]
    second = _SECONDS.get(prefix)
    if second is None:
        try:
            parsed = datetime.fromisoformat(prefix + "+00:00")
        except ValueError:
            return None
        second = int(parsed.timestamp())
        if iso_time(second)[:19] != prefix:  # not the canonical text of that second
            return None
        if len(_SECONDS) >= 256:
            _SECONDS.clear()
        _SECONDS[prefix] = second
    # as datetime's timestamp(): the exact quotient, rounded once
    return (second * 1000 + int(millis)) / 1000


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# The keys a log row's columns hold: left out of its ``fields`` when the column holds the same
# text (the readers put them back; see ``_query._log``).
COLUMN_KEYS = ("level", "event", "logger", "service", "trace_id", "span_id", "request_id")


def log_row(event: dict[str, Any]) -> tuple[Any, ...]:
    """The ``logs`` row of one finished event; ``fields`` holds the rest of the event: the
    keys its columns hold are left out, the timestamp too when ``iso_time`` gives it back."""
    ts, level, columns, rest = _log_parts(event)
    _level, name, logger, service, trace_id, span_id, request_id = columns
    return (
        ts, level, _LEVELS.get(level, 20), logger, service, name, trace_id, span_id,
        request_id, _dumps(rest),
    )  # fmt: skip


def prepared_log(event: dict[str, Any]) -> tuple[Any, ...]:
    """:func:`log_row` straight in the stored form (:func:`._rows.prepare_log`)."""
    ts, level, columns, rest = _log_parts(event)
    _level, name, logger, service, trace_id, span_id, request_id = columns
    level_no = _LEVELS.get(level, 20)
    return (
        ts, None if LEVEL_NAMES.get(level_no) == level else level, level_no, logger, service,
        name, id_in(trace_id), id_in(span_id), id_in(request_id),
        pack(_dumps(rest)) if rest else None,
    )  # fmt: skip


def _log_parts(
    event: dict[str, Any],
) -> tuple[float, str, tuple[str | None, ...], dict[str, Any]]:
    level = str(event.get("level", "info")).lower()
    stamp = event.get("timestamp")
    pipeline_time = _pipeline_time(stamp) if type(stamp) is str else None
    ts = _epoch(stamp) if pipeline_time is None else pipeline_time
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
        # the pipeline's own timestamp text is given back by iso_time: left out
        and not (k == "timestamp" and (pipeline_time is not None or v == iso_time(ts)))
    }
    return ts, level, columns, rest


_COLUMN_INDEX = {k: i for i, k in enumerate(COLUMN_KEYS)}


def iso_time(ts: float) -> str:
    """The log pipeline's timestamp text of an epoch time: UTC, milliseconds, ``Z``."""
    millis = round(ts * 1000)
    return (
        datetime.fromtimestamp(millis // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        + f".{millis % 1000:03d}Z"
    )


_STORES: weakref.WeakValueDictionary[tuple[Any, ...], SQLiteStore] = weakref.WeakValueDictionary()
_STORES_LOCK = threading.Lock()


def shared_store(
    path: str, *, retention: float, busy_timeout: float, max_size: int | None
) -> SQLiteStore:
    """The process's writer of a store file, shared by the span exporter and the log sink:
    one connection, and one lock that the two wait on (instead of SQLite's busy retries
    between two connections of one process)."""
    key = (SQLiteStore.absolute(path), retention, busy_timeout, max_size)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = SQLiteStore(
                path, retention=retention, busy_timeout=busy_timeout, max_size=max_size
            )
        return store


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
        self.store = shared_store(
            path, retention=retention, busy_timeout=busy_timeout, max_size=max_size
        )
        self.endpoint = self.store.path  # named in the batch processor's failure line

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.write_prepared(spans=[prepared_span(s) for s in spans])
        except StoreUnavailable:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self.store.close()


# Log lines per transaction (the log pipeline hands over up to 512 at a time).
LOG_CHUNK = 128


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
        self.store = shared_store(
            path, retention=retention, busy_timeout=busy_timeout, max_size=max_size
        )
        self._dropped = dropped.labels("store", "store_unavailable") if dropped else None

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        """Write ``events`` in transactions of :data:`LOG_CHUNK` lines: the store's lock is
        held briefly each time, and a span batch waiting for it goes in between."""
        rows = [prepared_log(e) for e in events]
        failed = 0
        for first in range(0, len(rows), LOG_CHUNK):
            chunk = rows[first : first + LOG_CHUNK]
            try:
                self.store.write_prepared(logs=chunk)
            except StoreUnavailable:
                if self._dropped is None:
                    raise  # no counter of our own: the pipeline counts it as a sink error
                failed += len(chunk)  # (the next chunks fail at once: the store pauses)
        if failed and self._dropped is not None:
            self._dropped.inc(failed)

    def close(self) -> None:
        self.store.close()
