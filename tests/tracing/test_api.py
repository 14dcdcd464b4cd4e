"""The tracer API for application code (``telemetry.get_tracer``) and the span resource."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from telemetry_web import TelemetryMiddleware
from telemetry_web.tracing import TelemetrySpan, TelemetryTracer

from ._support import call
from .conftest import Capture


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan | TelemetrySpan) -> int:
    context = span.get_span_context() if isinstance(span, TelemetrySpan) else span.context
    assert context is not None
    return context.span_id


# --- start_span --------------------------------------------------------------------------------


def test_start_span_with_attributes_and_the_current_parent(capture: Capture) -> None:
    """start_span takes attributes, parents to the current span and is not made current."""
    captured = capture()
    tracer = captured.telemetry.get_tracer("orders", "1.0")
    assert isinstance(tracer, TelemetryTracer)
    with tracer.start_span("outer") as outer:
        inner = tracer.start_span("inner", attributes={"order.id": 7, "express": True})
        assert trace.get_current_span().get_span_context() == outer.get_span_context()
        inner.end()
    spans = by_name(captured.spans())
    assert dict(spans["inner"].attributes or {}) == {"order.id": 7, "express": True}
    assert parent_id(spans["inner"]) == span_id(outer)
    assert parent_id(spans["outer"]) is None
    scope = spans["inner"].instrumentation_scope
    assert scope is not None
    assert (scope.name, scope.version) == ("orders", "1.0")


@pytest.mark.parametrize("form", ["span", "otel span", "span context", "context"])
def test_explicit_parent_in_every_form(capture: Capture, form: str) -> None:
    """parent= accepts our span, an OpenTelemetry span, a SpanContext or a Context, and wins
    over the current span."""
    captured = capture()
    tracer = captured.telemetry.get_tracer("orders")
    chosen = tracer.start_span("chosen")
    parents: dict[str, Any] = {
        "span": chosen,
        "otel span": chosen.otel_span,
        "span context": chosen.get_span_context(),
        "context": trace.set_span_in_context(chosen.otel_span),
    }
    with tracer.start_span("current"):
        tracer.start_span("child", parent=parents[form]).end()
    chosen.end()
    spans = by_name(captured.spans())
    assert parent_id(spans["child"]) == span_id(chosen)
    assert spans["child"].context.trace_id == chosen.get_span_context().trace_id


def test_parent_and_context_together_is_an_error(capture: Capture) -> None:
    """Giving the parent twice, or something that is not a parent, is a TypeError."""
    tracer = capture().telemetry.get_tracer("orders")
    with pytest.raises(TypeError, match="not both"):
        tracer.start_span("x", trace.set_span_in_context(trace.INVALID_SPAN), parent=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected a span"):
        tracer.start_span("x", parent="abc")  # type: ignore[arg-type]


def test_events_errors_status_and_end(capture: Capture) -> None:
    """add_event and record_error carry attributes; record_error marks the span failed with
    error.type; a string status is understood; end twice is harmless."""
    captured = capture()
    tracer = captured.telemetry.get_tracer("orders")
    span = tracer.start_span("charge")
    span.add_event("card checked", {"card.brand": "visa"})
    try:
        raise LookupError("no such card")
    except LookupError as exc:
        span.record_error(exc, {"card.last4": "4242"})
        span.record_error(exc)  # the same exception once only
    span.end()
    span.end()
    ok = tracer.start_span("fine")
    ok.set_status("ok")
    ok.set_status("error", "too late: OK is final")
    ok.end()
    spans = by_name(captured.spans())
    charge = spans["charge"]
    assert [e.name for e in charge.events] == ["card checked", "exception"]
    assert dict(charge.events[0].attributes or {}) == {"card.brand": "visa"}
    exception = dict(charge.events[1].attributes or {})
    assert exception["exception.type"] == "LookupError"
    assert exception["exception.message"] == "no such card"
    assert exception["card.last4"] == "4242"
    assert charge.status.status_code is StatusCode.ERROR
    assert charge.status.description == "LookupError: no such card"
    assert (charge.attributes or {})["error.type"] == "LookupError"
    assert spans["fine"].status.status_code is StatusCode.OK
    with pytest.raises(ValueError, match="expected one of 'ok', 'error', 'unset'"):
        tracer.start_span("bad").set_status("broken")  # type: ignore[arg-type]


# --- with, decorators ----------------------------------------------------------------------------


def test_with_makes_current_records_the_error_and_ends(capture: Capture) -> None:
    """Inside ``with`` the span is current (children parent to it); an exception leaving the
    block is recorded once, marks the span failed and propagates; the span is ended."""
    captured = capture()
    tracer = captured.telemetry.get_tracer("orders")
    span = tracer.start_span("load")
    inside: list[SpanContext] = []

    def load() -> None:
        with span:
            inside.append(tracer.current_span().get_span_context())
            tracer.start_span("query").end()
            raise KeyError("order 7")

    with pytest.raises(KeyError):
        load()
    assert inside == [span.get_span_context()]
    assert not trace.get_current_span().get_span_context().is_valid  # detached again
    assert not span.is_recording()
    spans = by_name(captured.spans())
    assert parent_id(spans["query"]) == span_id(spans["load"])
    loaded = spans["load"]
    assert loaded.status.status_code is StatusCode.ERROR
    (event,) = loaded.events
    assert dict(event.attributes or {})["exception.escaped"] == "True"


def test_base_exceptions_end_the_span_without_failing_it(capture: Capture) -> None:
    """KeyboardInterrupt (like CancelledError and GeneratorExit) is not an error of the span."""
    captured = capture()
    tracer = captured.telemetry.get_tracer("orders")
    with pytest.raises(KeyboardInterrupt), tracer.span("interrupted"):
        raise KeyboardInterrupt
    (span,) = captured.spans()
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()


def test_span_decorator_on_sync_functions(capture: Capture) -> None:
    """``@tracer.span`` names the span after the function, ``@tracer.span("name", ...)`` takes
    a name, attributes and kind; a span per call, failures recorded, metadata kept."""
    captured = capture()
    tracer = captured.telemetry.get_tracer("orders")

    @tracer.span
    def price(amount: int) -> int:
        """Price it."""
        tracer.current_span().set_attribute("amount", amount)
        return amount * 2

    @tracer.span("pay", attributes={"component": "billing"}, kind=SpanKind.CLIENT)
    def pay() -> None:
        raise RuntimeError("declined")

    assert price(3) == 6
    assert price(4) == 8
    with pytest.raises(RuntimeError):
        pay()
    assert price.__name__ == "price"
    assert price.__doc__ == "Price it."
    spans = captured.spans()
    name = "test_span_decorator_on_sync_functions.<locals>.price"
    assert [s.name for s in spans] == [name, name, "pay"]
    assert [dict(s.attributes or {}).get("amount") for s in spans[:2]] == [3, 4]
    assert spans[2].kind is SpanKind.CLIENT
    assert (spans[2].attributes or {})["component"] == "billing"
    assert spans[2].status.status_code is StatusCode.ERROR


async def test_span_decorator_on_async_functions(capture: Capture) -> None:
    """An async function's span lasts until its coroutine finishes, and concurrent calls are
    siblings under the caller's span, not each other's children."""
    captured = capture()
    tracer = captured.telemetry.get_tracer("orders")

    @tracer.span("fetch")
    async def fetch(delay: float) -> float:
        await asyncio.sleep(delay)
        tracer.start_span("inner").end()
        return delay

    with tracer.start_span("request") as request:
        assert list(await asyncio.gather(fetch(0.05), fetch(0.01))) == [0.05, 0.01]
    spans = captured.spans()
    fetches = [s for s in spans if s.name == "fetch"]
    assert len(fetches) == 2
    for span in fetches:
        assert parent_id(span) == span_id(request)
    inners = [s for s in spans if s.name == "inner"]
    assert sorted(parent_id(s) or 0 for s in inners) == sorted(span_id(s) for s in fetches)
    slow = max(fetches, key=lambda s: (s.end_time or 0) - (s.start_time or 0))
    assert (slow.end_time or 0) - (slow.start_time or 0) >= 50_000_000  # ns: the whole await


def test_span_as_context_manager_and_start_as_current_span(capture: Capture) -> None:
    """``with tracer.span(name)`` and OpenTelemetry's ``start_as_current_span`` behave alike,
    and the latter also decorates."""
    captured = capture()
    tracer = captured.telemetry.get_tracer("orders")
    with tracer.span("a", attributes={"k": "v"}) as a:
        assert isinstance(a, TelemetrySpan)
        with tracer.start_as_current_span("b", kind=SpanKind.PRODUCER) as b:
            b.add_event("sent")

    @tracer.start_as_current_span("c")
    def c() -> str:
        return "done"

    assert c() == "done"
    spans = by_name(captured.spans())
    assert parent_id(spans["b"]) == span_id(spans["a"])
    assert spans["b"].kind is SpanKind.PRODUCER
    assert spans["c"].parent is None
    with pytest.raises(TypeError, match="needs a span name"), tracer.span():
        pass


def test_generator_functions_are_refused() -> None:
    """Decorating a generator function is a TypeError: its body would run outside the span."""
    tracer = TelemetryTracer(lambda: None, "orders")

    def gen() -> Any:
        yield 1

    async def agen() -> Any:
        yield 1

    for function in (gen, agen):
        with pytest.raises(TypeError, match="generator function"):
            tracer.span("x")(function)


def test_request_span_is_the_parent_inside_a_request(capture: Capture) -> None:
    """Spans started while the middleware's request span is current are its children, and
    current_span() returns that request span."""
    captured = capture()
    telemetry = captured.telemetry
    tracer = telemetry.get_tracer("orders")
    seen: list[SpanContext] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(tracer.current_span().get_span_context())
        with tracer.span("work"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    assert asyncio.run(call(TelemetryMiddleware(app, telemetry=telemetry))) == 200
    spans = captured.spans()
    server = next(s for s in spans if s.kind is SpanKind.SERVER)
    work = next(s for s in spans if s.name == "work")
    assert parent_id(work) == span_id(server)
    assert seen == [server.context]


def test_tracing_disabled_gives_non_recording_spans(capture: Capture) -> None:
    """With tracing off, spans record nothing and decorators still call through."""
    captured = capture({"tracing": {"enabled": False}})
    tracer = captured.telemetry.get_tracer("orders")

    @tracer.span
    def work() -> int:
        return 1

    assert work() == 1
    with tracer.start_span("x") as span:
        assert not span.is_recording()
        span.record_error(ValueError("ignored"))
    assert captured.spans() == []


def test_the_tracer_follows_reconfiguration(capture: Capture) -> None:
    """A tracer obtained before configure_tracing starts later spans on the new provider."""
    captured = capture()
    telemetry = captured.telemetry
    tracer = telemetry.get_tracer("orders")
    assert tracer.start_span("before").is_recording()
    telemetry.configure_tracing({"sampling": "always_off"})
    assert not tracer.start_span("after").is_recording()  # the new provider's sampler
    telemetry.configure_tracing({"sampling": "always_on", "resource_attributes": {"team": "a"}})
    span = tracer.start_span("again")
    assert span.is_recording()
    assert span.otel_span.resource.attributes["team"] == "a"  # type: ignore[attr-defined]
