"""A trace as the waterfall shows it: spans depth-first (children by start time under their
parent), each with its depth and its offset and length on the trace's time scale, and the
trace's log lines interleaved after the last row that started at or before them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..store import LogRecord, SpanRecord

__all__ = ["trace_rows"]


def _ordered(spans: Sequence[SpanRecord]) -> list[tuple[SpanRecord, int]]:
    """Depth-first, children by start time; a span whose parent is not in the store (another
    service's, not exported) is a root."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[SpanRecord, int]] = []
    stack = [(s, 0) for s in reversed(sorted(children.get(None, []), key=lambda s: s.start))]
    while stack:
        span, depth = stack.pop()
        ordered.append((span, depth))
        kids = sorted(children.get(span.span_id, []), key=lambda s: s.start)
        stack.extend((k, depth + 1) for k in reversed(kids))
    return ordered


def trace_rows(spans: Sequence[SpanRecord], logs: Sequence[LogRecord]) -> dict[str, Any]:
    """The JSON document of the trace page (times in milliseconds from the trace's start)."""
    start = min(s.start for s in spans)
    end = max(s.start + s.duration for s in spans)
    rows: list[dict[str, Any]] = []
    for span, depth in _ordered(spans):
        rows.append(
            {
                "type": "span",
                "span_id": span.span_id,
                "parent_id": span.parent_id,
                "depth": depth,
                "name": span.name,
                "kind": span.kind,
                "service": span.service,
                "status": span.status,
                "status_message": span.status_message,
                "http_status": span.http_status,
                "offset_ms": (span.start - start) * 1000,
                "duration_ms": span.duration * 1000,
                "attributes": span.attributes,
                "events": [
                    {**e, "offset_ms": (e["timestamp"] / 1e9 - start) * 1000}  # ns
                    if isinstance(e.get("timestamp"), (int, float))
                    else e
                    for e in span.events
                ],
            }
        )
    # Log lines at their times: after the last span row (in waterfall order) that had started.
    placed: list[dict[str, Any]] = []
    for entry in sorted(logs, key=lambda e: (e.timestamp, e.id)):
        offset = (entry.timestamp - start) * 1000
        after = max(
            (i for i, r in enumerate(rows) if r["type"] == "span" and r["offset_ms"] <= offset),
            default=-1,
        )
        owner = next((r for r in rows if r["span_id"] == entry.span_id), None)
        if owner is None:
            owner = rows[after] if after >= 0 else None
        depth = owner["depth"] + 1 if owner is not None else 0
        placed.append(
            {
                "type": "log",
                "after": after,
                "depth": depth,
                "offset_ms": offset,
                "level": entry.level,
                "event": entry.event,
                "logger": entry.logger,
                "span_id": entry.span_id,
                "fields": entry.fields,
            }
        )
    merged: list[dict[str, Any]] = []
    for index, row in enumerate([{"type": "start"}, *rows]):
        if index:
            merged.append(row)
        merged.extend(p for p in placed if p["after"] == index - 1)
    for row in merged:
        row.pop("after", None)
    root = rows[0]
    return {
        "trace_id": spans[0].trace_id,
        "name": root["name"],
        "service": root["service"],
        "start": start,
        "duration_ms": (end - start) * 1000,
        "span_count": len(spans),
        "error": any(s.is_error for s in spans),
        "rows": merged,
    }
