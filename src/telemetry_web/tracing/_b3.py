"""B3 propagation, single header (``b3``) and multi-header (``X-B3-*``), as Zipkin, Envoy and
Istio write it (https://github.com/openzipkin/b3-propagation).

Parsing is strict: a trace id of 16 or 32 lowercase-or-uppercase hex digits that is not all
zeros, a span id of 16 hex digits that is not all zeros, a sampling state of ``0``, ``1`` or
``d`` (``true``/``false`` too in the multi form, as old Zipkin clients send). Anything else
yields no context, so the request starts a new root trace. A sampling-only header (``b3: 0``)
carries no ids and is ignored as well.
"""

from __future__ import annotations

import re

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    get_current_span,
    set_span_in_context,
)

__all__ = ["B3MultiPropagator", "B3SinglePropagator"]

SINGLE = "b3"
TRACE_ID = "x-b3-traceid"
SPAN_ID = "x-b3-spanid"
PARENT_ID = "x-b3-parentspanid"
SAMPLED = "x-b3-sampled"
FLAGS = "x-b3-flags"

_TRACE_ID = re.compile(r"^(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})$")
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
_SAMPLED_VALUES = {"1": True, "d": True, "true": True, "0": False, "false": False}
_SAMPLED_FLAGS = TraceFlags(TraceFlags.SAMPLED)
_DEFAULT_FLAGS = TraceFlags(TraceFlags.DEFAULT)


def _one(getter: Getter[CarrierT], carrier: CarrierT, key: str) -> str | None:
    """The header's single value; absent, repeated (conflicting) or empty gives None."""
    values = getter.get(carrier, key)
    if not values:
        return None
    if len(values) != 1:
        return None
    value = values[0].strip()
    if "," in value:  # two headers joined by the server: which one is meant is unknowable
        return None
    return value or None


def _context(trace_id: str, span_id: str, sampled: bool) -> SpanContext | None:
    if not _TRACE_ID.match(trace_id) or not _SPAN_ID.match(span_id):
        return None
    trace = int(trace_id, 16)  # a 64-bit id is the low half of a 128-bit one
    span = int(span_id, 16)
    if trace == INVALID_TRACE_ID or span == INVALID_SPAN_ID:
        return None
    return SpanContext(
        trace, span, is_remote=True, trace_flags=_SAMPLED_FLAGS if sampled else _DEFAULT_FLAGS
    )


def _with(context: Context | None, span_context: SpanContext | None) -> Context:
    if span_context is None:
        return context if context is not None else Context()
    return set_span_in_context(NonRecordingSpan(span_context), context)


class B3SinglePropagator(TextMapPropagator):
    """``b3: {trace_id}-{span_id}[-{sampled}[-{parent_span_id}]]``."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        value = _one(getter, carrier, SINGLE)
        if value is None:
            return _with(context, None)
        parts = value.split("-")
        if len(parts) < 2 or len(parts) > 4:
            return _with(context, None)
        sampled = True  # no sampling state: the caller recorded it, so keep the trace
        if len(parts) >= 3:
            if parts[2] not in ("0", "1", "d"):
                return _with(context, None)
            sampled = parts[2] != "0"
        if len(parts) == 4 and not _SPAN_ID.match(parts[3]):
            return _with(context, None)
        return _with(context, _context(parts[0], parts[1], sampled))

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        sampled = "1" if span_context.trace_flags.sampled else "0"
        setter.set(
            carrier,
            SINGLE,
            f"{span_context.trace_id:032x}-{span_context.span_id:016x}-{sampled}",
        )

    @property
    def fields(self) -> set[str]:
        return {SINGLE}


class B3MultiPropagator(TextMapPropagator):
    """``X-B3-TraceId``, ``X-B3-SpanId``, ``X-B3-Sampled``/``X-B3-Flags``, ``X-B3-ParentSpanId``."""

    def extract(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        getter: Getter[CarrierT] = default_getter,
    ) -> Context:
        trace_id = _one(getter, carrier, TRACE_ID)
        span_id = _one(getter, carrier, SPAN_ID)
        if trace_id is None or span_id is None:
            return _with(context, None)
        sampled = True
        flags = _one(getter, carrier, FLAGS)
        raw_sampled = _one(getter, carrier, SAMPLED)
        if flags is not None and flags != "1" and flags != "0":
            return _with(context, None)
        if raw_sampled is not None:
            decision = _SAMPLED_VALUES.get(raw_sampled.lower())
            if decision is None:
                return _with(context, None)
            sampled = decision
        if flags == "1":  # debug forces sampling
            sampled = True
        parent = _one(getter, carrier, PARENT_ID)
        if parent is not None and not _SPAN_ID.match(parent):
            return _with(context, None)
        return _with(context, _context(trace_id, span_id, sampled))

    def inject(
        self,
        carrier: CarrierT,
        context: Context | None = None,
        setter: Setter[CarrierT] = default_setter,
    ) -> None:
        span_context = get_current_span(context).get_span_context()
        if not span_context.is_valid:
            return
        setter.set(carrier, "X-B3-TraceId", f"{span_context.trace_id:032x}")
        setter.set(carrier, "X-B3-SpanId", f"{span_context.span_id:016x}")
        setter.set(carrier, "X-B3-Sampled", "1" if span_context.trace_flags.sampled else "0")

    @property
    def fields(self) -> set[str]:
        return {TRACE_ID, SPAN_ID, PARENT_ID, SAMPLED, FLAGS}
