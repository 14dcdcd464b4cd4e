"""The tracer API for application code: ``telemetry.get_tracer(name)``.

Example::

    tracer = telemetry.get_tracer("orders")

    span = tracer.start_span("load order", attributes={"order.id": 7}, parent=request_span)
    span.add_event("cache miss", {"key": "order:7"})
    span.end()

    with tracer.start_span("charge") as span:      # current while inside; ended on exit
        try:
            charge()
        except CardDeclined as exc:
            span.record_error(exc, {"card.brand": "visa"})   # event + ERROR status

    @tracer.span("price basket", attributes={"component": "pricing"})
    def price(basket): ...                          # a span per call

    @tracer.span                                    # named after the function
    async def fetch_stock(sku): ...                 # timed to the end of the coroutine

- ``start_span`` starts a span without making it current; its parent is ``parent`` (a span, a
  ``SpanContext`` or a ``Context``) or else the current span. ``with`` makes it current for
  the block, records an ``Exception`` escaping the block as its error, and ends it.
- ``tracer.span(...)`` is both a decorator (sync and async functions) and a context manager;
  ``start_as_current_span`` is the same as ``tracer.span`` with OpenTelemetry's arguments.
- Other exceptions (``KeyboardInterrupt``, ``asyncio.CancelledError``, ``GeneratorExit``) end
  the span without marking it as failed, as OpenTelemetry's ``use_span`` does.
- The tracer follows ``configure_tracing``: spans started after a reconfiguration go to the new
  provider. With tracing disabled every span is a cheap non-recording one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes, AttributeValue

from .. import semconv as sc

__all__ = ["TelemetrySpan", "TelemetryTracer"]

_F = TypeVar("_F", bound=Callable[..., Any])
StatusName = Literal["ok", "error", "unset"]
_STATUS_NAMES = {"ok": StatusCode.OK, "error": StatusCode.ERROR, "unset": StatusCode.UNSET}


class TelemetrySpan(trace.Span):
    """A span from :meth:`TelemetryTracer.start_span`: OpenTelemetry's span interface plus
    :meth:`record_error`, string statuses and a ``with`` block that makes it current."""

    __slots__ = ("_recorded", "_span", "_tokens")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._tokens: list[Token[Context]] = []
        self._recorded: BaseException | None = None

    @property
    def otel_span(self) -> trace.Span:
        """The OpenTelemetry span underneath (what ``trace.get_current_span()`` returns)."""
        return self._span

    def get_span_context(self) -> SpanContext:
        return self._span.get_span_context()

    def is_recording(self) -> bool:
        return self._span.is_recording()

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self._span.set_attributes(attributes)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        """An event at ``timestamp`` (nanoseconds since the epoch; now by default)."""
        self._span.add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        self._span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self._span.update_name(name)

    def set_status(
        self, status: Status | StatusCode | StatusName, description: str | None = None
    ) -> None:
        """``Status``, ``StatusCode`` or ``"ok"``/``"error"``/``"unset"``; ``description``
        goes with an error. OK is final, as in OpenTelemetry."""
        if isinstance(status, str):
            code = _STATUS_NAMES.get(status.lower())
            if code is None:
                raise ValueError(f"status: expected one of 'ok', 'error', 'unset', got {status!r}")
            status = code
        self._span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event only (see :meth:`record_error` to also mark the span)."""
        self._span.record_exception(exception, attributes, timestamp, escaped)

    def record_error(
        self, exception: BaseException, attributes: Attributes = None, *, escaped: bool = False
    ) -> None:
        """Record ``exception`` as this span's error: an ``exception`` event carrying
        ``attributes`` too, ``error.type``, and ERROR status ``"<Type>: <message>"``. Recording
        the same exception again (say, on its way out of a ``with`` block) does nothing."""
        if exception is self._recorded:
            return
        self._recorded = exception
        self._span.record_exception(exception, attributes, escaped=escaped)
        self._span.set_attribute(sc.ATTR_ERROR_TYPE, sc.exception_type(type(exception)))
        self._span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))

    def end(self, end_time: int | None = None) -> None:
        """End the span (later calls do nothing)."""
        self._span.end(end_time)

    def __enter__(self) -> TelemetrySpan:
        self._tokens.append(otel_context.attach(trace.set_span_in_context(self._span)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if isinstance(exc, Exception):
                self.record_error(exc, escaped=True)
            self._span.end()
        finally:
            if self._tokens:
                otel_context.detach(self._tokens.pop())

    def __repr__(self) -> str:
        ctx = self.get_span_context()
        return f"<TelemetrySpan trace_id={ctx.trace_id:032x} span_id={ctx.span_id:016x}>"


class _SpanScope:
    """``tracer.span(...)``: a span per ``with`` block or per call of the decorated function."""

    __slots__ = ("_kwargs", "_name", "_stack", "_tracer")

    def __init__(self, tracer: TelemetryTracer, name: str | None, kwargs: dict[str, Any]) -> None:
        self._tracer = tracer
        self._name = name
        self._kwargs = kwargs
        self._stack: list[TelemetrySpan] = []

    def _start(self, name: str) -> TelemetrySpan:
        return self._tracer.start_span(name, **self._kwargs)

    def __enter__(self) -> TelemetrySpan:
        if self._name is None:
            raise TypeError("`with tracer.span(...)` needs a span name")
        span = self._start(self._name)
        self._stack.append(span)
        return span.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.pop().__exit__(exc_type, exc, tb)

    def __call__(self, function: _F) -> _F:
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(
                f"tracer.span cannot decorate the generator function {function.__qualname__}: "
                "its body runs after the call returns; open the span inside it with "
                "`with tracer.start_span(...)` instead"
            )
        name = self._name or function.__qualname__
        start = self._start

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def traced_coroutine(*args: Any, **kwargs: Any) -> Any:
                with start(name):
                    return await function(*args, **kwargs)

            return traced_coroutine  # type: ignore[return-value]

        @functools.wraps(function)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with start(name):
                return function(*args, **kwargs)

        return traced  # type: ignore[return-value]


class TelemetryTracer(trace.Tracer):
    """Starts :class:`TelemetrySpan` s on whichever provider the Telemetry has now.

    Args:
        provider: returns the current tracer provider (None: tracing is off).
        name, version: the instrumentation scope.
    """

    def __init__(
        self,
        provider: Callable[[], trace.TracerProvider | None],
        name: str,
        version: str | None = None,
    ) -> None:
        self._provider = provider
        self.name = name
        self.version = version
        self._for: trace.TracerProvider | None = None
        self._tracer: trace.Tracer = trace.NoOpTracer()

    def _current(self) -> trace.Tracer:
        provider = self._provider()
        if provider is not self._for:
            self._tracer = (
                provider.get_tracer(self.name, self.version) if provider else trace.NoOpTracer()
            )
            self._for = provider
        return self._tracer

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        *,
        parent: TelemetrySpan | trace.Span | SpanContext | Context | None = None,
    ) -> TelemetrySpan:
        """Start a span; it is not current until used in ``with`` (see the module docstring).

        Args:
            name: the span name.
            attributes: its first attributes.
            parent: a span, ``SpanContext`` or ``Context``; the current span by default.
            context: OpenTelemetry's way of giving the parent (a ``Context``); not with
                ``parent``.
            kind, links, start_time: as in OpenTelemetry.
        """
        if parent is not None:
            if context is not None:
                raise TypeError("start_span: give the parent as parent= or context=, not both")
            context = _parent_context(parent)
        span = self._current().start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        return TelemetrySpan(span)

    @overload
    def span(self, name: _F) -> _F: ...

    @overload
    def span(
        self,
        name: str | None = None,
        *,
        attributes: Attributes = None,
        kind: SpanKind = SpanKind.INTERNAL,
        parent: TelemetrySpan | trace.Span | SpanContext | Context | None = None,
        links: Sequence[Link] | None = None,
    ) -> _SpanScope: ...

    def span(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        attributes: Attributes = None,
        kind: SpanKind = SpanKind.INTERNAL,
        parent: TelemetrySpan | trace.Span | SpanContext | Context | None = None,
        links: Sequence[Link] | None = None,
    ) -> Any:
        """A decorator and context manager: ``@tracer.span``, ``@tracer.span("name",
        attributes=...)`` or ``with tracer.span("name") as span:``. A decorated function gets a
        span per call, named after the function unless ``name`` is given; an exception leaving
        it is recorded as the span's error."""
        kwargs = {"attributes": attributes, "kind": kind, "parent": parent, "links": links}
        if callable(name):
            return _SpanScope(self, None, kwargs)(name)
        return _SpanScope(self, name, kwargs)

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _SpanScope:
        """OpenTelemetry's spelling of :meth:`span` (``end_on_exit=False`` is not supported:
        use :meth:`start_span` with ``trace.use_span`` for that)."""
        if not end_on_exit:
            raise ValueError("end_on_exit=False: use start_span() and trace.use_span()")
        kwargs = {"context": context, "kind": kind, "attributes": attributes, "links": links,
                  "start_time": start_time, "record_exception": record_exception,
                  "set_status_on_exception": set_status_on_exception}  # fmt: skip
        return _SpanScope(self, name, kwargs)

    def current_span(self) -> TelemetrySpan:
        """The current span (the request's, or one made current by ``with``) as a
        :class:`TelemetrySpan`, non-recording outside any span."""
        return TelemetrySpan(trace.get_current_span())

    def __repr__(self) -> str:
        return f"<TelemetryTracer {self.name!r}>"


def _parent_context(parent: TelemetrySpan | trace.Span | SpanContext | Context) -> Context:
    if isinstance(parent, Context):
        return parent
    if isinstance(parent, TelemetrySpan):
        return trace.set_span_in_context(parent.otel_span)
    if isinstance(parent, SpanContext):
        return trace.set_span_in_context(NonRecordingSpan(parent))
    if isinstance(parent, trace.Span):
        return trace.set_span_in_context(parent)
    raise TypeError(
        f"parent: expected a span, a SpanContext or a Context, got {type(parent).__name__}"
    )
