"""The request log line's fast path: a record on the request thread, a line on the writer's.

Every request writes one event of a fixed shape: the standard keys, the pipeline's static
fields, then ``method``, ``route``, ``path``, ``status``, ``duration_ms``, ``client``,
``user_agent``, ``request_id`` and, when present, ``query``, ``trace_id`` and ``span_id``, all
flat values. The lifecycle queues it as a :data:`RequestRecord`, a tuple of those values: no
dict is built on the request thread, and the tuple comes from CPython's free list instead of
adding to the garbage collector's allocation count, as a queued dict does (a count that, once
past its threshold, collects and promotes whatever requests are in flight).

On the writer thread, :meth:`RequestLines.finish` dates the record and checks the two values a
person typed (path and query) for secrets, and :meth:`RequestLines.render` writes its JSON line
with one format string: the same line as :func:`~telemetry_web.logging._sinks.render_json`
writes for :func:`request_event`'s dict, byte for byte, for a fraction of the cost. The dict
itself is built only for a sink that reads events (the store, Elasticsearch, a user's sink);
sinks that only write lines (a file, the console) never pay for it. Any other configuration
(processors of the user's, redaction keys or patterns) turns records into dicts at once and
takes the general path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ._processors import Processor, Redactor
from ._timestamps import iso_utc

__all__ = ["RequestLines", "RequestRecord", "request_event"]

# (timestamp, level, method, route, path, status, duration_ms, client, user_agent, request_id,
#  query or None, trace_id or None, span_id or None); the timestamp is epoch seconds.
RequestRecord = tuple[Any, ...]
_EPOCH: Final = 0
_PATH: Final = 4
_QUERY: Final = 10

_quote: Final = json.encoder.encode_basestring  # the stdlib encoder's own (C) string quoting
_encode: Final = json.JSONEncoder(default=str, ensure_ascii=False).encode


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def request_event(
    record: RequestRecord, static: Mapping[str, Any], timestamp: str | None = None
) -> dict[str, Any]:
    """The request event a record stands for: the standard keys, ``static``, its own fields
    (``timestamp``: the ISO text of a finished record; the record's epoch seconds otherwise)."""
    (
        epoch, level, method, route, path, status, duration_ms, client, user_agent, request_id,
        query, trace_id, span_id,
    ) = record  # fmt: skip
    event: dict[str, Any] = {
        "timestamp": epoch if timestamp is None else timestamp,
        "level": level,
        "event": "request",
        "logger": "telemetry_web.request",
        **static,
        "method": method,
        "route": route,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "client": client,
        "user_agent": user_agent,
        "request_id": request_id,
    }
    if query is not None:
        event["query"] = query
    if trace_id is not None:
        event["trace_id"] = trace_id
        event["span_id"] = span_id
    return event


class RequestLines:
    """Finishes and renders the request records of one pipeline (see the module docstring)."""

    def __init__(self, redactor: Redactor, static: dict[str, Any]) -> None:
        self._clean: Callable[[str], bool] = redactor.clean
        self.static = static
        # The static fields as they render between the logger and the method.
        self._static = _encode(static)[1:-1] + ", " if static else ""

    @classmethod
    def for_pipeline(
        cls, processors: Sequence[Processor], static: dict[str, Any]
    ) -> RequestLines | None:
        """The fast path, when the only processor is a plain redactor and the static fields
        are plain text that redaction leaves alone; None otherwise."""
        if len(processors) != 1 or type(processors[0]) is not Redactor:
            return None
        redactor = processors[0]
        if not redactor.plain:
            return None
        for key, value in static.items():
            if redactor.sensitive(key) or type(value) is not str or not redactor.clean(value):
                return None
        return cls(redactor, static)

    def finish(self, record: RequestRecord) -> str | None:
        """The record's ISO timestamp; None when it needs the general path (a value that
        redaction would change)."""
        clean = self._clean
        query = record[_QUERY]
        if not clean(record[_PATH]) or (query is not None and not clean(query)):
            return None
        return iso_utc(record[_EPOCH])

    def event(self, record: RequestRecord, stamp: str) -> dict[str, Any]:
        """The finished event's dict, for sinks that read events."""
        return request_event(record, self.static, stamp)

    def render(self, record: RequestRecord, stamp: str) -> str:
        """The record's JSON line, as ``render_json`` writes its event."""
        (
            _, level, method, route, path, status, duration_ms, client, user_agent, request_id,
            query, trace_id, span_id,
        ) = record  # fmt: skip
        tail = ""
        if query is not None:
            tail = ', "query": ' + _quote(query)
        if trace_id is not None:
            tail += f', "trace_id": {_quote(trace_id)}, "span_id": {_quote(span_id)}'
        return (
            f'{{"timestamp": "{stamp}", "level": "{level}", "event": "request", '
            f'"logger": "telemetry_web.request", {self._static}"method": {_quote(method)}, '
            f'"route": {_quote(route)}, "path": {_quote(path)}, '
            f'"status": {int.__repr__(status)}, '
            f'"duration_ms": {float.__repr__(duration_ms)}, '
            f'"client": {_text(client)}, "user_agent": {_text(user_agent)}, '
            f'"request_id": {_quote(request_id)}{tail}}}'
        )

    def render_all(
        self,
        events: list[Any],
        records: list[Any],
        stamps: list[Any],
        render_json: Callable[[dict[str, Any]], str],
    ) -> list[str]:
        """The lines of a batch: each record's by :meth:`render`, any other event's by
        ``render_json``."""
        lines: list[str] = []
        for i in range(len(events)):
            record = records[i]
            lines.append(
                render_json(events[i]) if record is None else self.render(record, stamps[i])
            )
        return lines
