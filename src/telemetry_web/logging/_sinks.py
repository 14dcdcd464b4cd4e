"""Where events go. A sink gets batches of finished event dicts on the writer thread.

The sinks themselves: :class:`ConsoleSink` here, ``FileSink`` in ``_file.py``,
``ElasticsearchSink`` in ``_elasticsearch.py``. A batch renders each event to JSON once, for
every sink that wants JSON (:func:`json_lines`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from types import NoneType
from typing import Any, Protocol, TextIO, overload, runtime_checkable

from structlog.dev import ConsoleRenderer

from ._request_line import RequestLines, RequestRecord

__all__ = ["ConsoleSink", "EventBatch", "LogSink", "json_lines", "render_json"]


@runtime_checkable
class LogSink(Protocol):
    """Receives finished events in batches, from the writer thread only.

    A sink may also define ``flush(timeout) -> bool`` (deliver what it holds) and ``close()``;
    ``name`` labels its drops in ``telemetry_log_events_dropped_total``.
    """

    def write(self, events: Sequence[dict[str, Any]]) -> None: ...


_encoder = json.JSONEncoder(default=str, ensure_ascii=False)
# The C encoder built once (JSONEncoder.encode builds one per call); no circular-reference
# bookkeeping: a cycle ends in RecursionError, and render_json's fallback line.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_make_chunks = (
    _c_encoder(None, str, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
    if _c_encoder is not None
    else None
)


_orjson: Any
try:  # optional: a faster renderer for the flat events most lines are
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is an optional extra
    _orjson = None

# The value types whose orjson rendering is the stdlib's, byte for byte, once its lines are
# joined (floats only in the range where both print the same digits).
_FLAT = frozenset({str, int, float, bool, NoneType})
_FLOAT_MIN = 1e-4  # below this orjson writes 0.00001 and 1e-5 where repr() writes 1e-05
_FLOAT_MAX = sys.float_info.max
_INDENT = _orjson.OPT_INDENT_2 if _orjson is not None else 0


def _render_flat(event: dict[str, Any]) -> str | None:
    """``event`` rendered by orjson exactly as the stdlib encoder renders it, or None when
    that cannot be shown cheaply (nested values, other types, small or non-finite floats,
    anything orjson refuses).

    The stdlib writes ``{"k": v, "k": v}``; orjson, indenting by two, writes the same key
    separator and puts each pair on a line of its own. Every newline byte in that output is
    orjson's (one inside a string is written as a backslash and ``n``), so joining the pair
    lines with ``", "`` gives the stdlib's line.
    """
    kinds = set(map(type, event.values()))
    if not kinds <= _FLAT:
        return None
    if float in kinds:  # orjson writes NaN and infinities as null, and 1e-05 as 0.00001
        for value in event.values():
            if type(value) is float and not (
                _FLOAT_MIN <= abs(value) <= _FLOAT_MAX or value == 0.0
            ):
                return None
    try:
        raw: bytes = _orjson.dumps(event, option=_INDENT)
    except (TypeError, ValueError):  # a non-str key, an int past 64 bits, a lone surrogate
        return None
    if len(raw) <= 2:
        return raw.decode()  # {}
    return "{" + raw[4:-2].replace(b",\n  ", b", ").decode() + "}"


def render_json(event: dict[str, Any]) -> str:
    """One event as a JSON object on one line (values JSON cannot hold are rendered as str);
    an event that cannot be rendered at all becomes a line saying so, with its standard keys."""
    if _orjson is not None:
        line = _render_flat(event)
        if line is not None:
            return line
    try:
        if _make_chunks is not None:
            return "".join(_make_chunks(event, 0))
        return _encoder.encode(event)
    except (ValueError, TypeError, RecursionError) as exc:
        standard = ("timestamp", "level", "event", "logger")
        fallback = {k: str(event.get(k)) for k in standard if k in event}
        fallback["render_error"] = f"{type(exc).__name__}: {exc}"
        return _encoder.encode(fallback)


class EventBatch(Sequence[dict[str, Any]]):
    """The events of one delivery, as a read-only sequence of dicts; their JSON lines are
    rendered on first use, once.

    Request lines of the fast path (``_request_line``) are added as records: a record's dict is
    built the first time a sink reads it, and its line is rendered from the record itself, so a
    batch read only through :func:`json_lines` (a file, the console) builds no dict for them.
    """

    __slots__ = ("_events", "_lines", "_records", "_request_lines", "_stamps")

    def __init__(self) -> None:
        self._events: list[dict[str, Any] | None] = []  # None: a record's dict, not built yet
        self._records: list[RequestRecord | None] | None = None  # beside _events, once used
        self._stamps: list[str | None] = []
        self._request_lines: RequestLines | None = None
        self._lines: list[str] | None = None

    def append(self, event: dict[str, Any]) -> None:
        self._events.append(event)
        if self._records is not None:
            self._records.append(None)
            self._stamps.append(None)

    def append_request(self, record: RequestRecord, stamp: str, lines: RequestLines) -> None:
        """A finished request record (``stamp``: its ISO timestamp) of ``lines``' pipeline."""
        records = self._records
        if records is None:
            records = self._records = [None] * len(self._events)
            self._stamps = [None] * len(self._events)
            self._request_lines = lines
        self._events.append(None)
        records.append(record)
        self._stamps.append(stamp)

    def __len__(self) -> int:
        return len(self._events)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self._event(i) for i in range(*index.indices(len(self._events)))]
        if index < 0:
            index += len(self._events)
        if not 0 <= index < len(self._events):
            raise IndexError("event index out of range")
        return self._event(index)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self._events)):
            yield self._event(i)

    def _event(self, i: int) -> dict[str, Any]:
        event = self._events[i]
        if event is None:  # a request record: its dict, built once
            lines, records = self._request_lines, self._records
            assert lines is not None
            assert records is not None
            event = self._events[i] = lines.event(records[i], self._stamps[i])  # type: ignore[arg-type]
        return event

    def json_lines(self) -> list[str]:
        if self._lines is None:
            lines, records = self._request_lines, self._records
            if lines is None or records is None:
                self._lines = [render_json(e) for e in self._events]  # type: ignore[arg-type]
            else:
                self._lines = lines.render_all(self._events, records, self._stamps, render_json)
        return self._lines


def json_lines(events: Sequence[dict[str, Any]]) -> list[str]:
    """The JSON line of each event (without newline), shared by the sinks of one batch."""
    if isinstance(events, EventBatch):
        return events.json_lines()
    return [render_json(e) for e in events]


class ConsoleSink:
    """Key-value lines for people, coloured (structlog's console renderer) on a terminal; one
    JSON object per line otherwise (a pipe, a file, a container's log driver).

    ``pretty``: True forces the coloured key-value lines, False forces ``format`` without
    colours (``json`` lines, or plain ``console`` key-value lines), None decides by the stream.
    """

    name = "console"

    def __init__(self, *, format: str = "json", pretty: bool | None = None, stream: str = "stdout"):
        self._stream_name = stream
        self._format = format
        self._pretty = pretty
        self._renderers: dict[bool, ConsoleRenderer] = {}

    @property
    def stream(self) -> TextIO:
        # Looked up per write so that pytest's capture and redirections take effect.
        return sys.stdout if self._stream_name == "stdout" else sys.stderr

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        stream = self.stream
        pretty = self._pretty if self._pretty is not None else _isatty(stream)
        if not pretty and self._format == "json":
            text = "".join(line + "\n" for line in json_lines(events))
        else:
            renderer = self._renderer(colors=pretty)
            text = "".join(str(renderer(None, "", _for_console(e))) + "\n" for e in events)
        stream.write(text)
        stream.flush()

    def _renderer(self, *, colors: bool) -> ConsoleRenderer:
        renderer = self._renderers.get(colors)
        if renderer is None:
            renderer = self._renderers[colors] = ConsoleRenderer(colors=colors)
        return renderer


def _for_console(event: dict[str, Any]) -> dict[str, Any]:
    """A copy the console renderer can take: the exception as its formatted stack."""
    copy = dict(event)
    exception = copy.get("exception")
    if isinstance(exception, dict):
        copy["exception"] = exception.get("stack") or f"{exception.get('type')}: {exception}"
    return copy


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
