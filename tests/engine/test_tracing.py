"""Tracing: samplers, the request span's API for application code, and the global provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags

from telemetry_web.config import SamplingSettings, parse_section
from telemetry_web.testing import CapturedTelemetry, capture_telemetry
from telemetry_web.tracing._sampling import RateLimitingSampler, build_sampler


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def decide(sampler: RateLimitingSampler, parent: SpanContext | None = None) -> Decision:
    context = trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else None
    return sampler.should_sample(context, 1, "GET /").decision


def test_rate_limiter_allows_rate_per_second_then_refills() -> None:
    """At most `rate` root traces per second; tokens come back as the clock moves."""
    clock = FakeClock()
    sampler = RateLimitingSampler(3, clock=clock)
    assert [decide(sampler) for _ in range(5)] == [Decision.RECORD_AND_SAMPLE] * 3 + [
        Decision.DROP
    ] * 2
    clock.now += 1 / 3
    assert decide(sampler) is Decision.RECORD_AND_SAMPLE
    assert decide(sampler) is Decision.DROP


def test_rate_limiter_honours_the_parent_decision() -> None:
    """A sampled parent is always continued and an unsampled one never, whatever the budget."""
    clock = FakeClock()
    sampler = RateLimitingSampler(1, clock=clock)
    decide(sampler)  # spends the only token
    sampled = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    unsampled = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(TraceFlags.DEFAULT))
    assert decide(sampler, sampled) is Decision.RECORD_AND_SAMPLE
    assert decide(sampler, unsampled) is Decision.DROP


@pytest.mark.parametrize(
    ("config", "expected_type", "description"),
    [
        ("always_on", type(ALWAYS_ON), None),
        ("always_off", type(ALWAYS_OFF), None),
        ({"ratio": {"rate": 0.25}}, TraceIdRatioBased, "TraceIdRatioBased{0.25}"),
        ({"rate_limiting": {"rate": 50}}, RateLimitingSampler, "RateLimitingSampler{50.0/s}"),
        ({"type": "parent_based", "root": "always_off"}, ParentBased, None),
    ],
)
def test_sampling_config_builds_the_matching_sampler(
    config: object, expected_type: type, description: str | None
) -> None:
    """Each `tracing.sampling` form maps to the SDK sampler users know."""
    sampler = build_sampler(parse_section(SamplingSettings, config))
    assert isinstance(sampler, expected_type)
    if description is not None:
        assert sampler.get_description() == description


@pytest.fixture
def captured() -> Iterator[CapturedTelemetry]:
    captured = capture_telemetry()
    yield captured
    captured.close()


def request(captured: CapturedTelemetry, headers: dict[str, str] | None = None) -> object:
    return captured.telemetry.lifecycle.begin(
        method="GET",
        scheme="http",
        path="/orders/7",
        query="",
        route="/orders/{id}",
        headers=headers or {},
        client="10.0.0.1",
    )


def test_application_code_can_annotate_the_request_span(captured: CapturedTelemetry) -> None:
    """set_attribute, add_event, set_status and record_exception on the current span reach
    the exported request span."""
    active = request(captured)
    span = trace.get_current_span()
    span.set_attribute("order.id", 7)
    span.set_attributes({"order.items": ["a", "b"], "ignored": None})
    span.add_event("payment authorised", {"amount": 12.5})
    span.record_exception(ValueError("card declined"))
    span.set_status(StatusCode.ERROR, "declined")
    active.finish(402)  # type: ignore[attr-defined]
    (exported,) = captured.spans()
    assert exported.name == "GET /orders/{id}"
    assert exported.kind is SpanKind.SERVER
    assert exported.attributes is not None
    assert exported.attributes["order.id"] == 7
    assert exported.attributes["order.items"] == ("a", "b")
    assert "ignored" not in exported.attributes
    assert [e.name for e in exported.events] == ["payment authorised", "exception"]
    exception = exported.events[1].attributes
    assert exception is not None
    assert exception["exception.type"] == "ValueError"
    assert exception["exception.message"] == "card declined"
    assert exported.status.status_code is StatusCode.ERROR
    assert exported.resource.attributes["service.name"] == "test"


def test_global_tracer_spans_are_children_of_the_request_span(captured: CapturedTelemetry) -> None:
    """`trace.get_tracer(__name__)` anywhere in the app joins the request's trace."""
    active = request(captured)
    with trace.get_tracer("app.orders").start_as_current_span("load order"):
        pass
    active.finish(200)  # type: ignore[attr-defined]
    child, parent = captured.spans()
    assert child.name == "load order"
    assert child.parent is not None
    assert child.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id


def test_sampled_out_requests_still_count_and_log_with_a_trace_id() -> None:
    """With always_off no span is exported, but metrics count and the log line has a trace id."""
    captured = capture_telemetry({"tracing": {"sampling": "always_off"}})
    try:
        request(captured).finish(200)  # type: ignore[attr-defined]
        assert captured.spans() == []
        (line,) = [e for e in captured.logs() if e["event"] == "request"]
        assert len(line["trace_id"]) == 32
        assert int(line["trace_id"], 16) != 0
        count = captured.sample("http_requests_total", method="GET", route="/orders/{id}",
                                status="200")  # fmt: skip
        assert count == 1.0
    finally:
        captured.close()


def test_incoming_sampled_parent_is_continued(captured: CapturedTelemetry) -> None:
    """A W3C traceparent makes the request span its child, with the caller's trace id."""
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    request(captured, {"traceparent": traceparent}).finish(200)  # type: ignore[attr-defined]
    (span,) = captured.spans()
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert span.parent.is_remote
