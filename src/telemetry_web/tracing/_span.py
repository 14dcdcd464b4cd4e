"""A lean recording span for the request span itself.

The SDK's span validates and locks on every attribute and reports self-metrics; the request span
is created on every request with a dozen attributes, so it costs more than the rest of the
middleware together. This span keeps the same contract: the provider's sampler, id generator,
resource and span processors decide and receive everything, exporters get an SDK
:class:`ReadableSpan`, and application code can still ``set_attribute``/``add_event``/
``record_exception`` on ``trace.get_current_span()``.

Exception events and error descriptions are scrubbed as they are recorded (statement literals
and parameters a database echoes, card numbers, credentials: ``telemetry_web._redaction``), so
no exporter, the store included, ever receives them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
)
from opentelemetry.util.types import Attributes, AttributeValue

from .._redaction import exception_attributes, scrub_text

__all__ = ["SpanFactory"]

_MAX_ATTRIBUTES = 128
_MAX_EVENTS = 128
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SCALARS = (str, bool, int, float)


class RequestSpan(Span):
    __slots__ = (
        "_attributes",
        "_context",
        "_end_time",
        "_events",
        "_factory",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_start_time",
        "_status",
    )

    def __init__(
        self,
        factory: SpanFactory,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
    ) -> None:
        self._factory = factory
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events: list[Event] = []
        self._links: list[Link] = []
        self._status = Status(StatusCode.UNSET)
        self._start_time = time.time_ns()
        self._end_time: int | None = None

    @property
    def start_time(self) -> int:
        return self._start_time

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end_time is not None or not key or value is None:
            return
        if not isinstance(value, _SCALARS):
            if not isinstance(value, Sequence) or not all(isinstance(v, _SCALARS) for v in value):
                return  # as the SDK does: attribute values are scalars or sequences of them
            value = tuple(value)
        if key in self._attributes or len(self._attributes) < _MAX_ATTRIBUTES:
            self._attributes[key] = value

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is None and len(self._events) < _MAX_EVENTS:
            self._events.append(Event(name, attributes, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return  # OK is final, as in the SDK
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.description:
            status = Status(status.status_code, scrub_text(status.description))
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        event: dict[str, Any] = exception_attributes(exception, escaped)
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time or time.time_ns()
        factory = self._factory
        factory.processor.on_end(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=factory.resource,
                attributes=self._attributes,
                events=tuple(self._events),
                links=tuple(self._links),
                kind=self._kind,
                status=self._status,
                start_time=self._start_time,
                end_time=self._end_time,
                instrumentation_scope=factory.scope,
            )
        )


class SpanFactory:
    """Starts request spans with a provider's sampler, ids, resource and processors."""

    def __init__(self, provider: TracerProvider, scope_name: str, version: str) -> None:
        self.sampler = provider.sampler
        self.ids = provider.id_generator
        self.resource: Resource = provider.resource
        self.processor: SpanProcessor = provider._active_span_processor
        self.scope = InstrumentationScope(scope_name, version)

    def start(
        self,
        name: str,
        parent: Context,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link] = (),
    ) -> Span:
        parent_context = get_current_span(parent).get_span_context()
        if parent_context.is_valid:
            trace_id = parent_context.trace_id
            parent_span: SpanContext | None = parent_context
        else:
            trace_id = self.ids.generate_trace_id()
            parent_span = None
        result = self.sampler.should_sample(parent, trace_id, name, kind, attributes, links)
        context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=_SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else _NOT_SAMPLED,
            trace_state=result.trace_state,
        )
        if result.decision is Decision.DROP:
            return NonRecordingSpan(context)
        if result.attributes and len(result.attributes) != len(attributes):
            attributes.update(result.attributes)  # a sampler that adds attributes
        span = RequestSpan(self, name, context, parent_span, kind, attributes)
        if links:
            span._links.extend(links)
        self.processor.on_start(span, parent_context=parent)  # type: ignore[arg-type]
        return span
