"""What the caller's thread adds to every event: level, time, trace and request ids, bound context.

This is the only logging work on the request path; rendering and I/O happen on the writer thread.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from opentelemetry.trace import get_current_span
from structlog.contextvars import get_contextvars

__all__ = ["REQUEST_ID", "correlate"]

# The id of the request being handled in this thread or task, if any.
REQUEST_ID: ContextVar[str | None] = ContextVar("telemetry_web_request_id", default=None)


def correlate(event: dict[str, Any]) -> dict[str, Any]:
    """Add time, trace/span ids, the request id and structlog's bound contextvars to ``event``."""
    event.setdefault("timestamp", time.time())
    context = get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", format(context.trace_id, "032x"))
        event.setdefault("span_id", format(context.span_id, "016x"))
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    bound = get_contextvars()
    if bound:
        for key, value in bound.items():
            event.setdefault(key, value)
    return event
