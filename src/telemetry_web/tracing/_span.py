"""A lean recording span for the request span itself.

The SDK's span validates and locks on every attribute and reports self-metrics; the request span
is created on every request with a dozen attributes, so it costs more than the rest of the
middleware together. This span keeps the same contract: the provider's sampler, id generator,
resource and span processors decide and receive everything, exporters get an SDK
:class:`ReadableSpan`, and application code can still ``set_attribute``/``add_event``/
``record_exception`` on ``trace.get_current_span()``.

The span is its own :class:`ReadableSpan` (as the SDK's is): ending it hands the same object to
the processors, no copy is built, except for our batch processors: they get it packed into a
tuple the garbage collector leaves alone while it waits for export (``tracing/_packed.py``).
When the sampler does not read the start attributes (the built-in ones), the caller may pass
a function building them, called only for a sampled span, so a sampled-out request builds no
attribute dict and no span object.

Exception events and error descriptions are scrubbed as they are recorded (statement literals
and parameters a database echoes, card numbers, credentials: ``telemetry_web._redaction``), so
no exporter, the store included, ever receives them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import opentelemetry.context as otel_context
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.util.types import Attributes, AttributeValue

from .._redaction import exception_attributes, scrub_text
from ..semconv import ATTR_HTTP_ROUTE as HTTP_ROUTE
from ..semconv import ATTR_HTTP_STATUS as HTTP_STATUS
from ._batch import BoundedBatchProcessor, span_bytes
from ._packed import UNSET_STATUS, PackedSpan, origin_index, pack
from ._sampling import RateLimitingSampler

__all__ = ["RequestSpan", "SpanFactory", "attach_span"]

_MAX_ATTRIBUTES: Final = 128
_MAX_EVENTS: Final = 128
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
# Enum members read once: a lookup on an Enum class goes through EnumType.__getattr__.
_RECORD_AND_SAMPLE: Final = Decision.RECORD_AND_SAMPLE
_DROP: Final = Decision.DROP
_TRACE_ID_LIMIT: Final = TraceIdRatioBased.TRACE_ID_LIMIT
_SCALARS: Final = (str, bool, int, float)


_time_ns: Final = time.time_ns
_getrandbits: Final = random.getrandbits
# Samplers whose decision never depends on the span's attributes (exact types: a subclass may
# read them).
_BLIND_SAMPLERS: Final = (StaticSampler, TraceIdRatioBased, RateLimitingSampler)
_ID_MAX: Final = (1 << 128) - 1, (1 << 64) - 1
_new_context: Final = tuple.__new__
# on_start methods known to do nothing: not called per span.
_NOOP_ON_START: Final = (SpanProcessor.on_start, BoundedBatchProcessor.on_start)


try:  # the key set_span_in_context uses (private in OpenTelemetry; its function if it moves)
    from opentelemetry.trace.propagation import _SPAN_KEY as _KEY

    _SPAN_KEY: str | None = _KEY
except ImportError:  # pragma: no cover
    _SPAN_KEY = None


def attach_span(span: Span, parent: Context) -> object:
    """Make ``span`` current, under ``parent``; the token to reset. What
    ``attach(set_span_in_context(span, parent))`` does, with one dict instead of three when
    the runtime context is the default (contextvars) one."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    if _SPAN_KEY is None or type(runtime) is not ContextVarsRuntimeContext:
        return otel_context.attach(set_span_in_context(span, parent))
    context = Context({**parent, _SPAN_KEY: span}) if parent else Context({_SPAN_KEY: span})
    return runtime._current_context.set(context)


def _reads_attributes(sampler: Sampler) -> bool:
    """Whether ``sampler`` may look at the start attributes to decide."""
    if type(sampler) is ParentBased:
        delegates = (
            getattr(sampler, name, None)
            for name in (
                "_root",
                "_remote_parent_sampled",
                "_remote_parent_not_sampled",
                "_local_parent_sampled",
                "_local_parent_not_sampled",
            )
        )
        return any(d is None or _reads_attributes(d) for d in delegates)
    return type(sampler) not in _BLIND_SAMPLERS


def _root_sampler(sampler: Sampler) -> Sampler:
    """The sampler deciding for a span without a valid parent."""
    if type(sampler) is ParentBased:
        return getattr(sampler, "_root", sampler)
    return sampler


class RequestSpan(Span, ReadableSpan):
    # _values, _event_list, _link_list: the dict and lists behind ReadableSpan's _attributes,
    # _events and _links while the span records (typed for updates). The lists are made on
    # the first event or link: most request spans have none, and each list is one more object
    # the garbage collector tracks while the span waits for export.
    __slots__ = ("_event_list", "_factory", "_link_list", "_values")

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
        self._attributes = self._values = attributes
        self._event_list: list[Event] | None = None
        self._link_list: list[Link] | None = None
        self._events = ()
        self._links = ()
        self._status = UNSET_STATUS
        self._start_time = _time_ns()
        self._end_time: int | None = None
        self._resource = factory.resource
        self._instrumentation_scope = factory.scope
        self._instrumentation_info = None

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # always set here

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
        values = self._values
        if key in values or len(values) < _MAX_ATTRIBUTES:
            values[key] = value

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is not None:
            return
        events = self._event_list
        if events is None:
            events = self._event_list = []
            self._events = events
        if len(events) < _MAX_EVENTS:
            events.append(Event(name, attributes, timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        if self._end_time is None and context.is_valid:
            self._add_links((Link(context, attributes),))

    def _add_links(self, links: Sequence[Link]) -> None:
        """Links given at the start (and by add_link), in one list made on first use."""
        if self._link_list is None:
            self._link_list = []
            self._links = self._link_list
        self._link_list.extend(links)

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

    def end_request(
        self, route: str | None, name: str | None, status: int, duration_ns: int
    ) -> None:
        """The request's outcome (``http.route`` and the name when routed, the status) and its
        end, ``duration_ns`` after its start: what set_attribute, update_name and end do,
        without their checks on the values (ours, of known types)."""
        if self._end_time is not None:
            return
        values = self._values
        if route is not None and name is not None:
            if len(values) < _MAX_ATTRIBUTES or HTTP_ROUTE in values:
                values[HTTP_ROUTE] = route
            self._name = name
        if len(values) < _MAX_ATTRIBUTES or HTTP_STATUS in values:
            values[HTTP_STATUS] = status
        self.end(self._start_time + duration_ns)  # type: ignore[operator]

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time or _time_ns()
        # Ended, nothing changes it any more: the processors get the span itself.
        if self._event_list is not None:
            self._events = tuple(self._event_list)
        if self._link_list is not None:
            self._links = tuple(self._link_list)
        self._factory.ended(self)


class SpanFactory:
    """Starts request spans with a provider's sampler, ids, resource and processors."""

    def __init__(self, provider: TracerProvider, scope_name: str, version: str) -> None:
        self.sampler = provider.sampler
        self.ids = provider.id_generator
        self._random_ids = type(self.ids) is RandomIdGenerator
        self.resource: Resource = provider.resource
        self.processor: SpanProcessor = provider._active_span_processor
        # What each span start and end calls: the provider's processors' own methods when it
        # forwards to them in order (the SDK's default), without its loop and the no-op
        # on_starts; looked at again when a processor is added.
        self._seen: object = None
        self._on_start: tuple[Callable[..., None], ...] = ()
        # (on_end, or a batch processor's on_end_packed; whether it takes the packed span)
        self._on_end: tuple[tuple[Callable[..., None], bool], ...] = ()
        self._refresh()
        self.scope = InstrumentationScope(scope_name, version)
        self._origin = origin_index(self.resource, self.scope)
        # Whether start attributes must exist before the sampler decides (see start()).
        self.reads_attributes = _reads_attributes(self.sampler)
        root = _root_sampler(self.sampler)
        # A root decision made here, as the SDK's samplers make it, without a SamplingResult:
        # "on" and "off" for the static samplers, a bound for the trace-id ratio.
        self._root_static: Decision | None = (
            getattr(root, "_decision", None) if type(root) is StaticSampler else None
        )
        self._root_bound: int | None = (
            root.bound if isinstance(root, TraceIdRatioBased) and type(root) is TraceIdRatioBased
            else None
        )  # fmt: skip

    def start(
        self,
        name: str,
        parent: Context,
        kind: SpanKind,
        attributes: dict[str, Any] | None,
        links: Sequence[Link] = (),
        build: Callable[..., dict[str, Any]] | None = None,
        *args: Any,
    ) -> Span:
        """Start a span under ``parent`` (a context), or a non-recording one if not sampled.

        ``attributes`` None: ``build(*args)`` makes them, before the sampler decides if it
        reads them (:attr:`reads_attributes`), else only for a sampled span.
        """
        # An empty context (no caller's trace: the usual request) has no parent to look up.
        parent_context = (
            INVALID_SPAN_CONTEXT
            if parent is not None and not parent
            else get_current_span(parent).get_span_context()
        )
        if parent_context[5]:  # (a SpanContext is a tuple: is_valid at 5, trace_id at 0)
            trace_id = parent_context[0]
            parent_span: SpanContext | None = parent_context
        else:
            # The SDK's random ids drawn here, without two method calls (0 is invalid: redrawn).
            trace_id = (self._random_ids and _getrandbits(128)) or self.ids.generate_trace_id()
            parent_span = None
        if attributes is None and self.reads_attributes:
            attributes = build(*args)  # type: ignore[misc]
        trace_state = None
        extra: Mapping[str, Any] | None = None
        if parent_span is None and self._root_static is not None:
            decision = self._root_static
        elif parent_span is None and self._root_bound is not None:
            decision = (
                _RECORD_AND_SAMPLE if trace_id & _TRACE_ID_LIMIT < self._root_bound else _DROP
            )
        else:
            result = self.sampler.should_sample(parent, trace_id, name, kind, attributes, links)
            decision = result.decision
            trace_state = result.trace_state
            extra = result.attributes
        span_id = (self._random_ids and _getrandbits(64)) or self.ids.generate_span_id()
        # SpanContext's own __new__, without its keyword handling.
        context: SpanContext = _new_context(
            SpanContext,
            (
                trace_id,
                span_id,
                False,
                _SAMPLED if decision is _RECORD_AND_SAMPLE else _NOT_SAMPLED,
                trace_state if trace_state is not None else DEFAULT_TRACE_STATE,
                0 < trace_id <= _ID_MAX[0] and 0 < span_id <= _ID_MAX[1],
            ),
        )
        if decision is _DROP:
            return NonRecordingSpan(context)
        if attributes is None:
            attributes = build(*args)  # type: ignore[misc]
        if extra and len(extra) != len(attributes):
            attributes.update(extra)  # a sampler that adds attributes
        span = RequestSpan(self, name, context, parent_span, kind, attributes)
        if links:
            span._add_links(links)
        if self._seen is not getattr(self.processor, "_span_processors", None):
            self._refresh()
        for on_start in self._on_start:
            on_start(span, parent_context=parent)
        return span

    def ended(self, span: RequestSpan) -> None:
        """Hand an ended span to the processors: our batch processors get it packed (one
        tuple for all of them, see tracing/_packed.py), any other the span itself."""
        if self._seen is not getattr(self.processor, "_span_processors", None):
            self._refresh()
        packed: PackedSpan | None = None
        size = 0
        for on_end, takes_packed in self._on_end:
            if not takes_packed:
                on_end(span)
                continue
            if packed is None:
                size = span_bytes(span._values, span._events, span._links)
                packed = pack(
                    span._name,
                    span._context,  # type: ignore[arg-type]  # always set here
                    span._parent,
                    span._kind,
                    span._values,
                    span._events,
                    span._links,
                    span._status,
                    span._start_time,  # type: ignore[arg-type]
                    span._end_time,  # type: ignore[arg-type]
                    self._origin,
                )
            on_end(packed, size)

    def _refresh(self) -> None:
        processor = self.processor
        processors = getattr(processor, "_span_processors", None)
        self._seen = processors
        if type(processor) is not SynchronousMultiSpanProcessor or processors is None:
            self._on_start, self._on_end = (processor.on_start,), (_on_end(processor),)
            return
        self._on_start = tuple(
            p.on_start
            for p in processors
            if getattr(type(p), "on_start", None) not in _NOOP_ON_START
        )
        self._on_end = tuple(_on_end(p) for p in processors)


def _on_end(processor: SpanProcessor) -> tuple[Callable[..., None], bool]:
    if type(processor) is BoundedBatchProcessor:
        return processor.on_end_packed, True
    return processor.on_end, False
