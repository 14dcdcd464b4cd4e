"""A Thrift decoder for the Jaeger wire formats, independent of the ``thrift`` library.

Written from the Thrift protocol specifications (apache/thrift doc/specs:
thrift-binary-protocol.md and thrift-compact-protocol.md) and driven by a field table copied
from jaeger-idl's ``thrift/jaeger.thrift`` and ``thrift/agent.thrift``. It shares no code with
the encoder under test: it reads bytes with :mod:`struct` and checks every field's id, wire
type and presence against the IDL, so a field written with the wrong id or type, a missing
required field or an unknown field is an error rather than a silently odd value.
"""

from __future__ import annotations

import struct
from typing import Any

# name -> {field id: (field name, type, required)}; a type is a primitive name, the name of a
# struct, or ("list", element type). Enums (TagType, SpanRefType) travel as i32.
IDL: dict[str, dict[int, tuple[str, Any, bool]]] = {
    "Tag": {
        1: ("key", "string", True),
        2: ("vType", "i32", True),
        3: ("vStr", "string", False),
        4: ("vDouble", "double", False),
        5: ("vBool", "bool", False),
        6: ("vLong", "i64", False),
        7: ("vBinary", "binary", False),
    },
    "Log": {1: ("timestamp", "i64", True), 2: ("fields", ("list", "Tag"), True)},
    "SpanRef": {
        1: ("refType", "i32", True),
        2: ("traceIdLow", "i64", True),
        3: ("traceIdHigh", "i64", True),
        4: ("spanId", "i64", True),
    },
    "Span": {
        1: ("traceIdLow", "i64", True),
        2: ("traceIdHigh", "i64", True),
        3: ("spanId", "i64", True),
        4: ("parentSpanId", "i64", True),
        5: ("operationName", "string", True),
        6: ("references", ("list", "SpanRef"), False),
        7: ("flags", "i32", True),
        8: ("startTime", "i64", True),
        9: ("duration", "i64", True),
        10: ("tags", ("list", "Tag"), False),
        11: ("logs", ("list", "Log"), False),
        12: ("incomplete", "bool", False),
    },
    "Process": {1: ("serviceName", "string", True), 2: ("tags", ("list", "Tag"), False)},
    "Batch": {1: ("process", "Process", True), 2: ("spans", ("list", "Span"), True)},
    # agent.thrift: oneway void emitBatch(1: jaeger.Batch batch)
    "emitBatch_args": {1: ("batch", "Batch", True)},
}
TAG_TYPES = {0: "vStr", 1: "vDouble", 2: "vBool", 3: "vLong", 4: "vBinary"}  # enum TagType
REF_TYPES = {0: "CHILD_OF", 1: "FOLLOWS_FROM"}  # enum SpanRefType

# Wire type codes per protocol.
_BINARY_CODES = {"bool": 2, "double": 4, "i32": 8, "i64": 10, "string": 11, "binary": 11,
                 "struct": 12, "list": 15}  # fmt: skip
_COMPACT_CODES = {"bool": (1, 2), "i32": (5,), "i64": (6,), "double": (7,), "string": (8,),
                  "binary": (8,), "list": (9,), "struct": (12,)}  # fmt: skip


class DecodeError(AssertionError):
    """The bytes do not follow the protocol or the IDL."""


def _kind(tp: Any) -> str:
    if isinstance(tp, tuple):
        return "list"
    return tp if tp in _BINARY_CODES else "struct"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DecodeError(f"truncated at byte {self.pos} (wanted {n} more)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def done(self) -> None:
        if self.pos != len(self.data):
            raise DecodeError(f"{len(self.data) - self.pos} bytes left over")


class BinaryReader(_Reader):
    """TBinaryProtocol: big-endian fixed-width integers, i32-length-prefixed strings."""

    def struct(self, name: str) -> dict[str, Any]:
        table, found = IDL[name], dict[str, Any]()
        while True:
            (wire,) = struct.unpack("!b", self.take(1))
            if wire == 0:
                return _check_required(name, table, found)
            (fid,) = struct.unpack("!h", self.take(2))
            field_name, tp = _field(name, table, fid)
            if wire != _BINARY_CODES[_kind(tp)]:
                raise DecodeError(f"{name}.{field_name}: wire type {wire} is not {tp}")
            found[field_name] = self.value(tp)

    def value(self, tp: Any) -> Any:
        kind = _kind(tp)
        if kind == "bool":
            return self.take(1) != b"\x00"
        if kind == "i32":
            return struct.unpack("!i", self.take(4))[0]
        if kind == "i64":
            return struct.unpack("!q", self.take(8))[0]
        if kind == "double":
            return struct.unpack("!d", self.take(8))[0]
        if kind in ("string", "binary"):
            (size,) = struct.unpack("!i", self.take(4))
            raw = self.take(size)
            return raw.decode("utf-8") if kind == "string" else raw
        if kind == "list":
            element, size = struct.unpack("!bi", self.take(5))
            if element != _BINARY_CODES[_kind(tp[1])]:
                raise DecodeError(f"list element type {element} is not {tp[1]}")
            return [self.value(tp[1]) for _ in range(size)]
        return self.struct(tp)


class CompactReader(_Reader):
    """TCompactProtocol: zigzag varints, field-id deltas, booleans in the field header,
    little-endian doubles."""

    def varint(self) -> int:
        result = shift = 0
        while True:
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def message(self) -> tuple[str, int, int, dict[str, Any]]:
        """A message: (name, message type, seqid, arguments struct)."""
        protocol_id, version_and_type = self.take(2)
        if protocol_id != 0x82 or version_and_type & 0x1F != 1:
            raise DecodeError(f"not a compact protocol message: {protocol_id:#x}")
        seqid = self.varint()
        name = self.take(self.varint()).decode()
        args = self.struct(f"{name}_args")
        self.done()
        return name, version_and_type >> 5, seqid, args

    def struct(self, name: str) -> dict[str, Any]:
        table, found, last = IDL[name], dict[str, Any](), 0
        while True:
            header = self.take(1)[0]
            if header == 0:
                return _check_required(name, table, found)
            wire, delta = header & 0x0F, header >> 4
            fid = last + delta if delta else self.zigzag()
            last = fid
            field_name, tp = _field(name, table, fid)
            if wire not in _COMPACT_CODES[_kind(tp)]:
                raise DecodeError(f"{name}.{field_name}: wire type {wire} is not {tp}")
            found[field_name] = wire == 1 if _kind(tp) == "bool" else self.value(tp)

    def value(self, tp: Any) -> Any:
        kind = _kind(tp)
        if kind in ("i32", "i64"):
            return self.zigzag()
        if kind == "double":
            return struct.unpack("<d", self.take(8))[0]
        if kind in ("string", "binary"):
            raw = self.take(self.varint())
            return raw.decode("utf-8") if kind == "string" else raw
        if kind == "bool":  # only inside lists
            return self.take(1)[0] == 1
        if kind == "list":
            header = self.take(1)[0]
            size, element = header >> 4, header & 0x0F
            if size == 15:
                size = self.varint()
            if element not in _COMPACT_CODES[_kind(tp[1])]:
                raise DecodeError(f"list element type {element} is not {tp[1]}")
            return [self.value(tp[1]) for _ in range(size)]
        return self.struct(tp)


def _field(name: str, table: dict[int, tuple[str, Any, bool]], fid: int) -> tuple[str, Any]:
    if fid not in table:
        raise DecodeError(f"{name}: field id {fid} is not in the IDL")
    field_name, tp, _ = table[fid]
    return field_name, tp


def _check_required(
    name: str, table: dict[int, tuple[str, Any, bool]], found: dict[str, Any]
) -> dict[str, Any]:
    for field_name, _, required in table.values():
        if required and field_name not in found:
            raise DecodeError(f"{name}.{field_name} is required")
    if name == "Tag":
        value_field = TAG_TYPES.get(found["vType"])
        present = {f for f in TAG_TYPES.values() if f in found}
        if value_field is None or present != {value_field}:
            raise DecodeError(f"Tag {found['key']!r}: vType {found['vType']} with {present}")
    if name == "SpanRef" and found["refType"] not in REF_TYPES:
        raise DecodeError(f"SpanRef: refType {found['refType']}")
    return found


def decode_batch_binary(body: bytes) -> dict[str, Any]:
    """A ``Batch`` in the binary protocol (the collector's request body)."""
    reader = BinaryReader(body)
    batch = reader.struct("Batch")
    reader.done()
    return batch


def decode_emit_batch(packet: bytes) -> tuple[str, int, int, dict[str, Any]]:
    """An ``Agent`` message in the compact protocol: (name, type, seqid, arguments)."""
    return CompactReader(packet).message()


# --- reading the decoded structures -------------------------------------------------------------


def unsigned(value: int) -> int:
    return value & (2**64 - 1)


def trace_id(span_or_ref: dict[str, Any]) -> str:
    high, low = unsigned(span_or_ref["traceIdHigh"]), unsigned(span_or_ref["traceIdLow"])
    return f"{high << 64 | low:032x}"


def span_id(value: int) -> str:
    return f"{unsigned(value):016x}"


def tags(struct_with_tags: dict[str, Any], key: str = "tags") -> dict[str, Any]:
    """Tags as {key: value}, the value taken from the field that vType names."""
    return {t["key"]: t[TAG_TYPES[t["vType"]]] for t in struct_with_tags.get(key, [])}


def tag_types(struct_with_tags: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: TAG_TYPES[t["vType"]] for t in struct_with_tags.get("tags", [])}
