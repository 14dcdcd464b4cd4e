"""The Jaeger Thrift structures, written by hand from jaeger-idl's ``thrift/jaeger.thrift`` and
``thrift/agent.thrift``, and encoded with the ``thrift`` library's protocols.

The field ids and types, as the IDL declares them::

    enum TagType     { STRING, DOUBLE, BOOL, LONG, BINARY }
    struct Tag       { 1: required string key     2: required TagType vType
                       3: optional string vStr    4: optional double vDouble
                       5: optional bool vBool     6: optional i64 vLong
                       7: optional binary vBinary }
    struct Log       { 1: required i64 timestamp  2: required list<Tag> fields }
    enum SpanRefType { CHILD_OF, FOLLOWS_FROM }
    struct SpanRef   { 1: required SpanRefType refType  2: required i64 traceIdLow
                       3: required i64 traceIdHigh      4: required i64 spanId }
    struct Span      { 1: required i64 traceIdLow     2: required i64 traceIdHigh
                       3: required i64 spanId         4: required i64 parentSpanId
                       5: required string operationName
                       6: optional list<SpanRef> references
                       7: required i32 flags          8: required i64 startTime
                       9: required i64 duration       10: optional list<Tag> tags
                       11: optional list<Log> logs    12: optional bool incomplete }
    struct Process   { 1: required string serviceName  2: optional list<Tag> tags }
    struct Batch     { 1: required Process process  2: required list<Span> spans }
    service Agent    { oneway void emitBatch(1: jaeger.Batch batch) }

Enums travel as i32. Thrift's i64 is signed: 64-bit ids at or above 2**63 are sent as their
two's complement (:func:`i64`), as every Jaeger client does. ``incomplete`` is never sent.

A struct's encoding does not depend on what surrounds it in either protocol, so spans are
encoded once and spliced into a batch as bytes: the agent exporter measures each span before
deciding which packet it goes into.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The thrift library ships no type information.
from thrift.protocol.TBinaryProtocol import TBinaryProtocol  # type: ignore[import-untyped]
from thrift.protocol.TCompactProtocol import TCompactProtocol  # type: ignore[import-untyped]
from thrift.Thrift import TMessageType, TType  # type: ignore[import-untyped]
from thrift.transport.TTransport import TMemoryBuffer  # type: ignore[import-untyped]

__all__ = [
    "BINARY",
    "BOOL",
    "CHILD_OF",
    "DOUBLE",
    "FOLLOWS_FROM",
    "LONG",
    "STRING",
    "Log",
    "Process",
    "Span",
    "SpanRef",
    "Tag",
    "batch_body",
    "emit_batch_message",
    "encode",
    "i64",
    "list_header_size",
]

# enum TagType
STRING, DOUBLE, BOOL, LONG, BINARY = range(5)
# enum SpanRefType
CHILD_OF, FOLLOWS_FROM = range(2)

_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

# Tag: the field carrying the value, per vType: (field id, Thrift type, IDL name)
_TAG_VALUE_FIELD = {
    STRING: (3, TType.STRING, "vStr"),
    DOUBLE: (4, TType.DOUBLE, "vDouble"),
    BOOL: (5, TType.BOOL, "vBool"),
    LONG: (6, TType.I64, "vLong"),
    BINARY: (7, TType.STRING, "vBinary"),
}


def i64(unsigned: int) -> int:
    """A 64-bit id as Thrift's signed i64 (two's complement above 2**63 - 1)."""
    return unsigned - 2**64 if unsigned > _I64_MAX else unsigned


def _utf8(text: str) -> bytes:
    # A lone surrogate in an attribute must not fail the whole batch.
    return text.encode("utf-8", "replace")


def _write_string(p: Any, name: str, fid: int, value: str) -> None:
    p.writeFieldBegin(name, TType.STRING, fid)
    p.writeBinary(_utf8(value))
    p.writeFieldEnd()


def _write_i64(p: Any, name: str, fid: int, value: int) -> None:
    p.writeFieldBegin(name, TType.I64, fid)
    p.writeI64(value)
    p.writeFieldEnd()


def _write_i32(p: Any, name: str, fid: int, value: int) -> None:
    p.writeFieldBegin(name, TType.I32, fid)
    p.writeI32(value)
    p.writeFieldEnd()


def _write_structs(p: Any, name: str, fid: int, items: Sequence[Any]) -> None:
    p.writeFieldBegin(name, TType.LIST, fid)
    p.writeListBegin(TType.STRUCT, len(items))
    for item in items:
        item.write(p)
    p.writeListEnd()
    p.writeFieldEnd()


@dataclass(frozen=True, slots=True)
class Tag:
    """``Tag``: a key and a value of one of the five ``TagType`` s (see :meth:`of`)."""

    key: str
    v_type: int
    value: str | float | bool | int | bytes

    @classmethod
    def of(cls, key: str, value: str | float | bool | int | bytes) -> Tag:
        """The tag whose type matches ``value``; an int outside i64 travels as a string."""
        if isinstance(value, bool):  # before int: bool is an int
            return cls(key, BOOL, value)
        if isinstance(value, int):
            if _I64_MIN <= value <= _I64_MAX:
                return cls(key, LONG, value)
            return cls(key, STRING, str(value))
        if isinstance(value, float):
            return cls(key, DOUBLE, value)
        if isinstance(value, bytes):
            return cls(key, BINARY, value)
        return cls(key, STRING, str(value))

    def write(self, p: Any) -> None:
        p.writeStructBegin("Tag")
        _write_string(p, "key", 1, self.key)
        _write_i32(p, "vType", 2, self.v_type)
        fid, ttype, name = _TAG_VALUE_FIELD[self.v_type]
        p.writeFieldBegin(name, ttype, fid)
        value = self.value
        if self.v_type == STRING:
            p.writeBinary(_utf8(str(value)))
        elif self.v_type == DOUBLE:
            p.writeDouble(float(value))
        elif self.v_type == BOOL:
            p.writeBool(bool(value))
        elif self.v_type == LONG:
            p.writeI64(int(value))
        else:
            p.writeBinary(bytes(value))  # type: ignore[arg-type]
        p.writeFieldEnd()
        p.writeFieldStop()
        p.writeStructEnd()


@dataclass(frozen=True, slots=True)
class Log:
    """``Log``: a timestamp in microseconds and its fields."""

    timestamp: int
    fields: Sequence[Tag]

    def write(self, p: Any) -> None:
        p.writeStructBegin("Log")
        _write_i64(p, "timestamp", 1, self.timestamp)
        _write_structs(p, "fields", 2, self.fields)
        p.writeFieldStop()
        p.writeStructEnd()


@dataclass(frozen=True, slots=True)
class SpanRef:
    """``SpanRef``: ``CHILD_OF`` or ``FOLLOWS_FROM`` another span (ids already signed)."""

    ref_type: int
    trace_id_low: int
    trace_id_high: int
    span_id: int

    def write(self, p: Any) -> None:
        p.writeStructBegin("SpanRef")
        _write_i32(p, "refType", 1, self.ref_type)
        _write_i64(p, "traceIdLow", 2, self.trace_id_low)
        _write_i64(p, "traceIdHigh", 3, self.trace_id_high)
        _write_i64(p, "spanId", 4, self.span_id)
        p.writeFieldStop()
        p.writeStructEnd()


@dataclass(frozen=True, slots=True)
class Span:
    """``Span``: ids already signed, times in microseconds; empty lists are left out."""

    trace_id_low: int
    trace_id_high: int
    span_id: int
    parent_span_id: int
    operation_name: str
    flags: int
    start_time: int
    duration: int
    references: Sequence[SpanRef] = ()
    tags: Sequence[Tag] = ()
    logs: Sequence[Log] = ()

    def write(self, p: Any) -> None:
        p.writeStructBegin("Span")
        _write_i64(p, "traceIdLow", 1, self.trace_id_low)
        _write_i64(p, "traceIdHigh", 2, self.trace_id_high)
        _write_i64(p, "spanId", 3, self.span_id)
        _write_i64(p, "parentSpanId", 4, self.parent_span_id)
        _write_string(p, "operationName", 5, self.operation_name)
        if self.references:
            _write_structs(p, "references", 6, self.references)
        _write_i32(p, "flags", 7, self.flags)
        _write_i64(p, "startTime", 8, self.start_time)
        _write_i64(p, "duration", 9, self.duration)
        if self.tags:
            _write_structs(p, "tags", 10, self.tags)
        if self.logs:
            _write_structs(p, "logs", 11, self.logs)
        p.writeFieldStop()
        p.writeStructEnd()


@dataclass(frozen=True, slots=True)
class Process:
    """``Process``: the service name and the other resource attributes as tags."""

    service_name: str
    tags: Sequence[Tag] = ()

    def write(self, p: Any) -> None:
        p.writeStructBegin("Process")
        _write_string(p, "serviceName", 1, self.service_name)
        if self.tags:
            _write_structs(p, "tags", 2, self.tags)
        p.writeFieldStop()
        p.writeStructEnd()


def encode(struct: Span | Process, compact: bool) -> bytes:
    """One struct in the compact (agent) or binary (collector) protocol."""
    buffer = TMemoryBuffer()
    struct.write(TCompactProtocol(buffer) if compact else TBinaryProtocol(buffer))
    return bytes(buffer.getvalue())


def _write_batch(p: Any, buffer: TMemoryBuffer, process: Process, spans: Sequence[bytes]) -> None:
    p.writeStructBegin("Batch")
    p.writeFieldBegin("process", TType.STRUCT, 1)
    process.write(p)
    p.writeFieldEnd()
    p.writeFieldBegin("spans", TType.LIST, 2)
    p.writeListBegin(TType.STRUCT, len(spans))
    for span in spans:  # each encoded by `encode` with the same protocol
        buffer.write(span)
    p.writeListEnd()
    p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()


def batch_body(process: Process, spans: Sequence[bytes]) -> bytes:
    """A ``Batch`` in the binary protocol (the collector's ``POST /api/traces`` body), from
    spans encoded with ``encode(span, compact=False)``."""
    buffer = TMemoryBuffer()
    _write_batch(TBinaryProtocol(buffer), buffer, process, spans)
    return bytes(buffer.getvalue())


def emit_batch_message(process: Process, spans: Sequence[bytes], seqid: int = 0) -> bytes:
    """An ``Agent.emitBatch`` oneway message in the compact protocol (one UDP packet), from
    spans encoded with ``encode(span, compact=True)``."""
    buffer = TMemoryBuffer()
    p = TCompactProtocol(buffer)
    p.writeMessageBegin("emitBatch", TMessageType.ONEWAY, seqid)
    p.writeStructBegin("emitBatch_args")
    p.writeFieldBegin("batch", TType.STRUCT, 1)
    _write_batch(p, buffer, process, spans)
    p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()
    p.writeMessageEnd()
    return bytes(buffer.getvalue())


def list_header_size(count: int) -> int:
    """Bytes of a compact-protocol list header for ``count`` elements."""
    if count <= 14:
        return 1
    size = 1
    while True:  # the varint that follows the 0xF? byte
        size += 1
        count >>= 7
        if not count:
            return size
