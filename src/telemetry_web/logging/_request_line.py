"""The request log line's fast path on the writer thread.

Every request writes one event of a fixed shape (``_lifecycle``): the standard keys, the
pipeline's static fields, then ``method``, ``route``, ``path``, ``status``, ``duration_ms``,
``client``, ``user_agent``, ``request_id`` and, when present, ``query``, ``trace_id`` and
``span_id``, all flat values. The caller builds it in that final order (static fields included),
so the writer only turns its timestamp into ISO text in place, checks the two values a person
typed (path and query) for secrets, and renders it with one format string: the same JSON line
as :func:`~telemetry_web.logging._sinks.render_json`, byte for byte, for a fraction of the cost
of the general path (finish, redaction walk, generic rendering). Any other configuration
(processors of the user's, redaction keys or patterns) takes the general path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from ._processors import Processor, Redactor, iso_utc

__all__ = ["RequestLines"]

_quote: Final = json.encoder.encode_basestring  # the stdlib encoder's own (C) string quoting
_encode: Final = json.JSONEncoder(default=str, ensure_ascii=False).encode


def _text(value: str | None) -> str:
    return "null" if value is None else _quote(value)


class RequestLines:
    """Finishes and renders the request events of one pipeline (see the module docstring)."""

    def __init__(self, redactor: Redactor, static: dict[str, Any]) -> None:
        self._redactor = redactor
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

    def finish(self, event: dict[str, Any]) -> bool:
        """Make ``event`` final in place; False when it needs the general path (a value that
        redaction would change)."""
        clean = self._redactor.clean
        query = event.get("query")
        if not clean(event["path"]) or (query is not None and not clean(query)):
            return False
        event["timestamp"] = iso_utc(event["timestamp"])
        return True

    def render(self, e: dict[str, Any]) -> str:
        """The event's JSON line, as ``render_json`` writes it."""
        tail = ""
        query = e.get("query")
        if query is not None:
            tail = ', "query": ' + _quote(query)
        trace_id = e.get("trace_id")
        if trace_id is not None:
            tail += f', "trace_id": {_quote(trace_id)}, "span_id": {_quote(e["span_id"])}'
        return (
            f'{{"timestamp": "{e["timestamp"]}", "level": "{e["level"]}", "event": "request", '
            f'"logger": "telemetry_web.request", {self._static}"method": {_quote(e["method"])}, '
            f'"route": {_quote(e["route"])}, "path": {_quote(e["path"])}, '
            f'"status": {int.__repr__(e["status"])}, '
            f'"duration_ms": {float.__repr__(e["duration_ms"])}, '
            f'"client": {_text(e["client"])}, "user_agent": {_text(e["user_agent"])}, '
            f'"request_id": {_quote(e["request_id"])}{tail}}}'
        )
