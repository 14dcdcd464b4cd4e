"""Request spans waiting in a batch queue: packed so the garbage collector leaves them alone,
and exported exactly as the span itself would have been."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)
from prometheus_client import CollectorRegistry, Counter

from telemetry_web.tracing._batch import BoundedBatchProcessor
from telemetry_web.tracing._span import SpanFactory


class _Gate(SpanExporter):
    """Holds every export until released: spans stay queued meanwhile."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.open.wait(10)
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _dropped() -> Counter:
    return Counter("dropped", "d", ["exporter", "reason"], registry=CollectorRegistry())


@pytest.fixture
def queued() -> Iterator[tuple[SpanFactory, _Gate, InMemorySpanExporter, BoundedBatchProcessor]]:
    """A factory whose provider has a batch processor (export held) and a simple one."""
    provider = TracerProvider()
    gate = _Gate()
    batch = BoundedBatchProcessor(gate, "gate", _dropped(), schedule_delay=60.0)
    provider.add_span_processor(batch)
    direct = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(direct))
    yield SpanFactory(provider, "packed-test", "1.2"), gate, direct, batch
    gate.open.set()
    batch.shutdown()


def _request_span(factory: SpanFactory, i: int) -> None:
    span = factory.start(
        "GET /users/{id}",
        Context(),
        SpanKind.SERVER,
        {"http.request.method": "GET", "url.path": f"/users/{i}", "server.port": 8000},
    )
    span.end_request("/users/{id}", "GET /users/{id}", 200, 1_000)  # type: ignore[attr-defined]


def test_queued_request_spans_leave_the_collectors_generations() -> None:
    """Waiting spans would otherwise be promoted to the oldest generation, and every quarter of
    its size promoted triggers a full collection of the whole heap."""
    provider = TracerProvider()
    gate = _Gate()
    batch = BoundedBatchProcessor(gate, "gate", _dropped(), schedule_delay=60.0)
    provider.add_span_processor(batch)
    factory = SpanFactory(provider, "packed-test", "1.2")
    _request_span(factory, 0)  # the worker thread and its objects exist before counting
    gc.collect()
    before = len(gc.get_objects())
    for i in range(300):
        _request_span(factory, i)
    # A collection untracks the tuples holding only untracked values; the packed span's
    # attribute tuples first, the span's own tuple at the latest in the middle generation's
    # pass: before anything would promote it to the oldest one.
    gc.collect(0)
    gc.collect(1)
    grown = len(gc.get_objects()) - before
    assert batch.queued == 301
    assert grown < 30, f"{grown} tracked objects for 300 queued spans"
    gate.open.set()
    assert batch.force_flush(10_000)
    assert len(gate.spans) == 301
    batch.shutdown()


def _fields(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        "links": [(link.context, dict(link.attributes or {})) for link in span.links],
        "status": (span.status.status_code, span.status.description),
        "start": span.start_time,
        "end": span.end_time,
        "resource": span.resource,
        "scope": span.instrumentation_scope,
    }


def test_the_exporter_gets_what_the_span_recorded(queued: Any) -> None:
    """A remote sampled parent with a trace state, a link, an event, an error status: the batch
    exporter's span equals the one a SimpleSpanProcessor is handed."""
    factory, gate, direct, batch = queued
    state = TraceState([("vendor", "v1")])
    parent = SpanContext(0xABC, 0xDEF, True, TraceFlags(TraceFlags.SAMPLED), state)
    link = Link(SpanContext(0x123, 0x456, True, TraceFlags(TraceFlags.SAMPLED)), {"why": "retry"})
    span = factory.start(
        "POST /orders",
        set_span_in_context(NonRecordingSpan(parent), Context()),
        SpanKind.SERVER,
        {"http.request.method": "POST"},
        (link,),
    )
    span.add_event("cache miss", {"key": "k"}, timestamp=5)
    span.set_attribute("tags", ["a", "b"])
    span.set_status(StatusCode.ERROR, "boom")
    span.end()
    plain = factory.start("GET /", Context(), SpanKind.SERVER, {"a": 1})
    plain.end()
    gate.open.set()
    assert batch.force_flush(10_000)
    assert [_fields(s) for s in gate.spans] == [_fields(s) for s in direct.get_finished_spans()]
    exported = gate.spans[0]
    assert exported.parent is not None
    assert exported.parent.is_remote
    assert exported.parent.trace_state == state
    assert exported.context.trace_id == 0xABC
    assert exported.context.is_valid
    assert exported.status.status_code is StatusCode.ERROR
    assert exported.attributes is not None
    assert exported.attributes["tags"] == ("a", "b")
    assert gate.spans[1].parent is None
    assert gate.spans[1].status.status_code is StatusCode.UNSET


class _RecordOnly(Sampler):
    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Any = None, trace_state: Any = None,
                      ) -> SamplingResult:  # fmt: skip
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "record-only"


def test_a_recorded_but_unsampled_span_is_not_exported() -> None:
    """RECORD_ONLY: the span records, but only sampled spans go to the exporter."""
    provider = TracerProvider(sampler=_RecordOnly())
    gate = _Gate()
    gate.open.set()
    batch = BoundedBatchProcessor(gate, "gate", _dropped(), schedule_delay=60.0)
    provider.add_span_processor(batch)
    factory = SpanFactory(provider, "packed-test", "1.2")
    span = factory.start("GET /", Context(), SpanKind.SERVER, {})
    assert span.is_recording()
    span.end()
    assert batch.queued == 0
    assert batch.force_flush(10_000)
    assert gate.spans == []
    batch.shutdown()
