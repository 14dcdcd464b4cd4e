"""Ended request spans as plain tuples while they wait in a batch queue.

A queued span lives for a second or more: long enough for the garbage collector to move it,
its context and its attribute dict into the oldest generation. Once a quarter of that
generation's size has moved in, CPython runs a full collection, which walks every object of
the process: tens of milliseconds, every few thousand requests, in the middle of one of them.
A tuple of numbers and strings (and tuples of them) is untracked by the collector's first
pass instead (a tuple holding any dict stays tracked: the attributes go in as their keys and
their values), so spans waiting for export never count as long-lived. The export thread turns
each back into an SDK :class:`ReadableSpan` just before calling the exporter.

What cannot be untracked (events, links, a non-default trace state, an error status) stays in
the tuple as it is: correct, only tracked like before.
"""

from __future__ import annotations

from typing import Any, Final

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    DEFAULT_TRACE_STATE,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

__all__ = ["UNSET_STATUS", "PackedSpan", "origin_index", "pack", "unpack"]

# (name, trace id, span id, flags, trace state or None, parent span id or None, parent
#  trace id, parent remote, parent flags, parent trace state or None, kind, attribute keys,
#  attribute values, events, links, status or None, start ns, end ns, origin)
PackedSpan = tuple[Any, ...]

# The status of a span that has none: packed as None (the request span starts with it).
UNSET_STATUS: Final = Status(StatusCode.UNSET)
_SERVER: Final = SpanKind.SERVER
_KIND_VALUES: Final = {id(kind): kind.value for kind in SpanKind}
_KINDS: Final = {kind.value: kind for kind in SpanKind}
_FLAGS: Final = {0: TraceFlags(TraceFlags.DEFAULT), 1: TraceFlags(TraceFlags.SAMPLED)}
_ID_MAX: Final = (1 << 128) - 1, (1 << 64) - 1
_new_context: Final = tuple.__new__
_new_object: Final = object.__new__

# The (resource, instrumentation scope) pairs of the span factories, by index: a tuple holding
# either object would stay tracked. Equal pairs share an index, so this grows with distinct
# resources (one per service), not with factories.
_ORIGINS: Final[list[tuple[Resource, InstrumentationScope]]] = []
_ORIGIN_INDEX: Final[dict[tuple[Resource, InstrumentationScope], int]] = {}


def origin_index(resource: Resource, scope: InstrumentationScope) -> int:
    """The index packed spans carry for spans of ``resource`` and ``scope``."""
    key = (resource, scope)
    index = _ORIGIN_INDEX.get(key)
    if index is None:
        index = _ORIGIN_INDEX[key] = len(_ORIGINS)
        _ORIGINS.append(key)
    return index


def _state(state: TraceState) -> TraceState | None:
    return None if state is DEFAULT_TRACE_STATE or not state else state


def pack(
    name: str,
    context: SpanContext,
    parent: SpanContext | None,
    kind: SpanKind,
    attributes: dict[str, Any],
    events: Any,
    links: Any,
    status: Status,
    start: int,
    end: int,
    origin: int,
) -> PackedSpan:
    """An ended span as a tuple of untracked values where the span allows it."""
    # A SpanContext is a tuple: (trace id, span id, remote, flags, trace state, valid); its
    # properties are Python calls, its items are not.
    if parent is None:
        parent_span_id, parent_trace_id, parent_remote, parent_flags = None, 0, False, 0
        parent_state = None
    else:
        parent_span_id, parent_trace_id, parent_remote = parent[1], parent[0], parent[2]
        parent_flags, parent_state = parent[3] & 0xFF, _state(parent[4])
    return (
        name, context[0], context[1], context[3] & 0xFF, _state(context[4]), parent_span_id,
        parent_trace_id, parent_remote, parent_flags, parent_state,
        1 if kind is _SERVER else _KIND_VALUES[id(kind)], tuple(attributes),
        tuple(attributes.values()), events, links, None if status is UNSET_STATUS else status,
        start, end, origin,
    )  # fmt: skip


def _context(
    trace_id: int, span_id: int, remote: bool, flags: int, state: TraceState | None
) -> SpanContext:
    # SpanContext's own __new__, without its keyword handling (as the request span makes it).
    return _new_context(
        SpanContext,
        (
            trace_id,
            span_id,
            remote,
            _FLAGS[flags] if flags < 2 else TraceFlags(flags),
            DEFAULT_TRACE_STATE if state is None else state,
            0 < trace_id <= _ID_MAX[0] and 0 < span_id <= _ID_MAX[1],
        ),
    )


def unpack(packed: PackedSpan) -> ReadableSpan:
    """The SDK span an exporter reads, from :func:`pack`'s tuple: the fields the SDK's own
    ``ReadableSpan.__init__`` sets (the request span sets the same ones)."""
    span: ReadableSpan = _new_object(ReadableSpan)
    resource, scope = _ORIGINS[packed[18]]
    status = packed[15]
    span._name = packed[0]
    span._context = _context(packed[1], packed[2], False, packed[3], packed[4])
    span._parent = (
        None
        if packed[5] is None
        else _context(packed[6], packed[5], packed[7], packed[8], packed[9])
    )
    span._kind = _KINDS[packed[10]]
    keys: tuple[str, ...] = packed[11]
    values: tuple[Any, ...] = packed[12]
    span._attributes = {keys[i]: values[i] for i in range(len(keys))}
    span._events = packed[13]
    span._links = packed[14]
    span._status = UNSET_STATUS if status is None else status
    span._start_time = packed[16]
    span._end_time = packed[17]
    span._resource = resource
    span._instrumentation_scope = scope
    span._instrumentation_info = None
    return span
