"""OpenTelemetry spans as Jaeger Thrift structures, following the OpenTelemetry specification's
mapping to Jaeger (specification/trace/sdk_exporters/jaeger.md).

- ids: the 128-bit trace id split into ``traceIdHigh``/``traceIdLow``; the parent's span id in
  ``parentSpanId`` and, explicitly, as a ``CHILD_OF`` reference; links as ``FOLLOWS_FROM``.
- attributes: typed tags (string, bool, long, double, binary); arrays as a JSON list string.
- kind: a ``span.kind`` tag (``client``, ``server``, ``producer``, ``consumer``; none for
  internal spans).
- status: ``otel.status_code`` (``OK``/``ERROR``), ``otel.status_description``, and the boolean
  tag ``error`` for errors.
- events: logs, the event name in the ``event`` field.
- scope: ``otel.scope.name``/``otel.scope.version`` tags; the resource: the ``Process``
  (``service.name`` as ``serviceName``, the other attributes as its tags).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from ._thrift import CHILD_OF, FOLLOWS_FROM, Log, Process, Span, SpanRef, Tag, i64

__all__ = ["group_by_resource", "to_jaeger_process", "to_jaeger_span"]

_LOW64 = 2**64 - 1
_KINDS = {
    SpanKind.CLIENT: "client",
    SpanKind.SERVER: "server",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}


def _tag(key: str, value: Any) -> Tag:
    if isinstance(value, str | bool | int | float | bytes):
        return Tag.of(key, value)
    if isinstance(value, Mapping):
        return Tag.of(key, json.dumps(dict(value), default=str, separators=(",", ":")))
    if isinstance(value, Sequence):
        return Tag.of(key, json.dumps(list(value), default=str, separators=(",", ":")))
    return Tag.of(key, str(value))


def _tags(attributes: Mapping[str, Any] | None) -> list[Tag]:
    return [_tag(key, value) for key, value in (attributes or {}).items()]


def _ref(ref_type: int, trace_id: int, span_id: int) -> SpanRef:
    return SpanRef(ref_type, i64(trace_id & _LOW64), i64(trace_id >> 64), i64(span_id))


def to_jaeger_span(span: ReadableSpan) -> Span:
    """The Jaeger ``Span`` of a finished OpenTelemetry span."""
    context = span.context
    assert context is not None  # a ReadableSpan handed to an exporter always has one
    trace_id = context.trace_id
    parent = span.parent
    references: list[SpanRef] = []
    if parent is not None:
        references.append(_ref(CHILD_OF, parent.trace_id, parent.span_id))
    for link in span.links:
        references.append(_ref(FOLLOWS_FROM, link.context.trace_id, link.context.span_id))
    tags = _tags(span.attributes)
    kind = _KINDS.get(span.kind)
    if kind is not None:
        tags.append(Tag.of("span.kind", kind))
    status = span.status
    if status.status_code is StatusCode.ERROR:
        tags.append(Tag.of("otel.status_code", "ERROR"))
        tags.append(Tag.of("error", True))
        if status.description:
            tags.append(Tag.of("otel.status_description", status.description))
    elif status.status_code is StatusCode.OK:
        tags.append(Tag.of("otel.status_code", "OK"))
    scope = span.instrumentation_scope
    if scope is not None:
        tags.append(Tag.of("otel.scope.name", scope.name))
        if scope.version:
            tags.append(Tag.of("otel.scope.version", scope.version))
    for key, count in (
        ("otel.dropped_attributes_count", span.dropped_attributes),
        ("otel.dropped_events_count", span.dropped_events),
        ("otel.dropped_links_count", span.dropped_links),
    ):
        if count:
            tags.append(Tag.of(key, count))
    logs = [
        Log(event.timestamp // 1000, [Tag.of("event", event.name), *_tags(event.attributes)])
        for event in span.events
    ]
    start = span.start_time or 0
    end = span.end_time or start
    return Span(
        trace_id_low=i64(trace_id & _LOW64),
        trace_id_high=i64(trace_id >> 64),
        span_id=i64(context.span_id),
        parent_span_id=i64(parent.span_id) if parent is not None else 0,
        operation_name=span.name,
        flags=int(context.trace_flags) & 0xFF,
        start_time=start // 1000,
        duration=max(0, end - start) // 1000,
        references=references,
        tags=tags,
        logs=logs,
    )


def to_jaeger_process(resource: Resource) -> Process:
    """The ``Process`` of a resource: ``service.name`` and the rest as tags."""
    attributes = dict(resource.attributes)
    service = attributes.pop("service.name", None) or "unknown_service"
    return Process(str(service), _tags(attributes))


def group_by_resource(
    spans: Iterable[ReadableSpan],
) -> list[tuple[Resource, list[ReadableSpan]]]:
    """Spans grouped by their resource (one ``Process`` per batch), in order of appearance;
    equal resources that are distinct objects share a group."""
    groups: list[tuple[Resource, list[ReadableSpan]]] = []
    last: tuple[Resource, list[ReadableSpan]] | None = None
    for span in spans:
        resource = span.resource
        if last is None or last[0] is not resource:  # usually one resource per provider
            last = next((g for g in groups if g[0] is resource or g[0] == resource), None)
            if last is None:
                last = (resource, [])
                groups.append(last)
        last[1].append(span)
    return groups
