"""The request span's cheap paths: attributes built only for a span that records, the span handed
to processors as its own ReadableSpan, the sampler's decision unchanged."""

from __future__ import annotations

import random
from typing import Any

import pytest
from opentelemetry.context import Context, get_value, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext, SpanKind, get_current_span

from telemetry_web.tracing._span import RequestSpan, SpanFactory, attach_span


class _Reading(Sampler):
    """A sampler that decides on an attribute (so it must see them before deciding)."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Any = None, trace_state: Any = None,
                      ) -> SamplingResult:  # fmt: skip
        keep = bool(attributes) and attributes.get("keep") is True
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE if keep else Decision.DROP, {**attributes, "seen": True}
        )

    def get_description(self) -> str:
        return "reading"


def _factory(sampler: Sampler) -> tuple[SpanFactory, InMemorySpanExporter]:
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return SpanFactory(provider, "test", "1"), exporter


@pytest.mark.parametrize(
    ("sampler", "reads"),
    [(ALWAYS_ON, False), (ParentBased(ALWAYS_OFF), False), (TraceIdRatioBased(0.5), False),
     (_Reading(), True), (ParentBased(_Reading()), True)],
)  # fmt: skip
def test_which_samplers_read_attributes(sampler: Sampler, reads: bool) -> None:
    assert _factory(sampler)[0].reads_attributes is reads


def test_a_dropped_span_builds_no_attributes() -> None:
    factory, _ = _factory(ParentBased(ALWAYS_OFF))
    built: list[int] = []

    def build(value: int) -> dict[str, Any]:
        built.append(value)
        return {"a": value}

    span = factory.start("GET /", Context(), SpanKind.SERVER, None, (), build, 1)
    assert not span.is_recording()
    assert span.get_span_context().is_valid
    assert not span.get_span_context().trace_flags.sampled
    assert built == []


def test_a_sampled_span_is_exported_as_itself_with_its_attributes() -> None:
    factory, exporter = _factory(ParentBased(ALWAYS_ON))
    span = factory.start("GET /", Context(), SpanKind.SERVER, None, (), lambda: {"a": 1})
    span.set_attribute("b", [1, 2])
    span.add_event("e")
    span.end()
    (finished,) = exporter.get_finished_spans()
    assert finished is span  # type: ignore[comparison-overlap]
    assert isinstance(finished, ReadableSpan)
    assert dict(finished.attributes or {}) == {"a": 1, "b": (1, 2)}
    assert [e.name for e in finished.events] == ["e"]
    assert finished.parent is None
    assert finished.end_time is not None
    assert finished.start_time is not None
    span.set_attribute("c", 1)  # ended: ignored
    assert "c" not in (finished.attributes or {})


def test_a_sampler_reading_attributes_sees_them_and_adds_its_own() -> None:
    factory, exporter = _factory(_Reading())
    dropped = factory.start("x", Context(), SpanKind.SERVER, None, (), lambda: {"keep": False})
    kept = factory.start("x", Context(), SpanKind.SERVER, None, (), lambda: {"keep": True})
    assert not dropped.is_recording()
    kept.end()
    (finished,) = exporter.get_finished_spans()
    assert dict(finished.attributes or {}) == {"keep": True, "seen": True}


def test_the_ratio_decision_is_the_sdk_one() -> None:
    sampler = TraceIdRatioBased(0.3)
    factory, _ = _factory(sampler)
    for _ in range(300):
        span = factory.start("x", Context(), SpanKind.SERVER, None, (), dict)
        context = span.get_span_context()
        expected = sampler.should_sample(None, context.trace_id, "x").decision
        assert span.is_recording() is (expected is Decision.RECORD_AND_SAMPLE)
        assert context.trace_flags.sampled is (expected is Decision.RECORD_AND_SAMPLE)
        if span.is_recording():
            span.end()


class _Recording(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[tuple[str, Any]] = []
        self.ended: list[str] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append((span.name, parent_context))

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.name)


def test_processors_added_later_get_starts_and_ends_in_order() -> None:
    """The factory calls the processors' own methods (no SDK loop): one added to the provider
    after the factory was built is still called, after the earlier ones."""
    factory, exporter = _factory(ALWAYS_ON)
    factory.start("first", Context(), SpanKind.SERVER, {}).end()
    provider_processor = factory.processor
    late = _Recording()
    provider_processor.add_span_processor(late)  # type: ignore[attr-defined]
    parent = Context()
    span = factory.start("second", parent, SpanKind.SERVER, {})
    assert late.started == [("second", parent)]
    assert late.ended == []
    span.end()
    assert late.ended == ["second"]
    assert [s.name for s in exporter.get_finished_spans()] == ["first", "second"]


def test_a_span_context_is_the_sdk_one() -> None:
    factory, _ = _factory(ALWAYS_ON)
    span = factory.start("x", Context(), SpanKind.SERVER, {})
    context = span.get_span_context()
    same = SpanContext(
        context.trace_id,
        context.span_id,
        is_remote=False,
        trace_flags=context.trace_flags,
        trace_state=context.trace_state,
    )
    assert context == same
    assert type(context) is SpanContext
    assert context.is_valid
    assert not context.is_remote
    assert context.trace_flags.sampled


def test_attach_span_makes_it_current_and_keeps_the_parents_values() -> None:
    factory, _ = _factory(ALWAYS_ON)
    parent = set_value("tenant", "acme", Context())
    span = factory.start("x", parent, SpanKind.SERVER, {})
    token = attach_span(span, parent)
    try:
        assert get_current_span() is span
        assert get_value("tenant") == "acme"
    finally:
        token.var.reset(token)  # type: ignore[attr-defined]
    assert get_current_span() is not span
    empty = attach_span(span, Context())
    try:
        assert get_current_span() is span
        assert get_value("tenant") is None
    finally:
        empty.var.reset(empty)  # type: ignore[attr-defined]


def test_end_request_records_what_the_general_path_records() -> None:
    """The usual outcome's shortcut: route, name, status and end time as set_attribute,
    update_name and end would record them, the attribute limit included."""
    factory, exporter = _factory(ALWAYS_ON)
    span = factory.start("GET", Context(), SpanKind.SERVER, {"http.request.method": "GET"})
    assert isinstance(span, RequestSpan)
    span.end_request("/users/{id}", "GET /users/{id}", 204, 1_500_000)
    span.end_request("/other", "GET /other", 500, 9)  # ended: ignored
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "GET /users/{id}"
    assert dict(finished.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/users/{id}",
        "http.response.status_code": 204,
    }
    assert finished.end_time == (finished.start_time or 0) + 1_500_000
    full = factory.start("x", Context(), SpanKind.SERVER, {f"a{i}": i for i in range(128)})
    assert isinstance(full, RequestSpan)
    full.end_request(None, None, 200, 1)
    assert "http.response.status_code" not in (exporter.get_finished_spans()[1].attributes or {})


class _CountingIds(IdGenerator):
    """A custom id generator (a vendor's, AWS X-Ray's): its ids must be the span's."""

    def __init__(self) -> None:
        self.next = 0

    def generate_trace_id(self) -> int:
        self.next += 1
        return 0xABC0000000000000000000000000 + self.next

    def generate_span_id(self) -> int:
        self.next += 1
        return 0xDEF00000 + self.next


def test_ids_come_from_the_providers_generator() -> None:
    """The default generator's draws are made inline; any other generator is called."""
    provider = TracerProvider(id_generator=_CountingIds())
    factory = SpanFactory(provider, "test", "1")
    context = factory.start("x", Context(), SpanKind.SERVER, {}).get_span_context()
    assert (context.trace_id, context.span_id) == (0xABC0000000000000000000000001, 0xDEF00002)
    default, _ = _factory(ALWAYS_ON)
    random.seed(7)
    drawn = default.start("y", Context(), SpanKind.SERVER, {}).get_span_context()
    random.seed(7)
    sdk = RandomIdGenerator()
    assert (drawn.trace_id, drawn.span_id) == (sdk.generate_trace_id(), sdk.generate_span_id())
    assert drawn.is_valid


def test_a_queued_spans_estimate_counts_its_attribute_text() -> None:
    """The batch queue's byte bound reads each span's estimate: a fixed part, a part per
    attribute, the text of string values and of the strings in tuple values (events too)."""
    from telemetry_web.tracing._batch import (
        _EVENT_BYTES,
        _ITEM_BYTES,
        _SPAN_BYTES,
        estimate_span_bytes,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    attributes = {"url.path": "/a" * 50, "http.status": 200, "h": ("x" * 30, "yy", 3)}
    span = SpanFactory(provider, "t", "1").start("GET", Context(), SpanKind.SERVER, attributes)
    assert isinstance(span, RequestSpan)
    span.add_event("exception", {"exception.message": "m" * 40})
    span.end()
    assert estimate_span_bytes(span) == (
        _SPAN_BYTES + 3 * _ITEM_BYTES + 100 + 3 * 16 + 32
        + _EVENT_BYTES + len("exception") + _ITEM_BYTES + 40
    )  # fmt: skip
    big = {**attributes, "url.path": "/a" * 5000}
    other = SpanFactory(provider, "t", "1").start("GET", Context(), SpanKind.SERVER, big)
    assert isinstance(other, RequestSpan)
    other.end()
    assert estimate_span_bytes(other) - estimate_span_bytes(span) == 10_000 - 100 - (
        _EVENT_BYTES + len("exception") + _ITEM_BYTES + 40
    )
