"""What the caller's thread adds to every event: time, trace and request ids, bound context.

This is the only logging work on the request path; rendering and I/O happen on other threads.

Two kinds of bound context reach every line:

- the request's scope (:data:`CURRENT_REQUEST`), set by the request lifecycle: the request id,
  the route and whatever :func:`bind_context` added. It is one mutable object per request, and
  every thread or task the request runs code in (an asyncio task, Starlette's thread pool,
  asgiref's ``sync_to_async``) copies the context and so reaches the same object: a ``user``
  bound in a dependency run in the thread pool is on the endpoint's lines and on the request
  line.
- structlog's own context variables (``structlog.contextvars.bind_contextvars``), local to the
  context that bound them, as structlog defines them.
"""

from __future__ import annotations

import contextvars
import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final, ParamSpec, Protocol, TypeVar

import structlog.contextvars as structlog_contextvars
from opentelemetry.trace import get_current_span

__all__ = [
    "CURRENT_REQUEST",
    "RequestScope",
    "bind_context",
    "carry_context",
    "correlate",
    "hex_id",
    "unbind_context",
]

P = ParamSpec("P")
R = TypeVar("R")


class RequestScope(Protocol):
    """The request being handled (the lifecycle's ``ActiveRequest``), as log lines see it."""

    @property
    def request_id(self) -> str: ...

    @property
    def route(self) -> str: ...

    @property
    def fields(self) -> dict[str, Any]: ...


# The request being handled, shared by every thread and task that works on it.
CURRENT_REQUEST: Final[ContextVar[RequestScope | None]] = ContextVar(
    "telemetry_web_request", default=None
)

# structlog keeps one ContextVar per bound key in this registry; reading the few registered
# ones beats iterating the whole context (OpenTelemetry's, asyncio's, ...) on every line.
_STRUCTLOG_VARS: dict[str, ContextVar[Any]] | None = getattr(
    structlog_contextvars, "_CONTEXT_VARS", None
)
_PREFIX_LEN = len(structlog_contextvars.STRUCTLOG_KEY_PREFIX)


def hex_id(value: int, size: int) -> str:
    """A trace (``size`` 16) or span id (8) as W3C writes it: lower-case hex, zero-padded."""
    try:
        return value.to_bytes(size, "big").hex()  # faster than format(value, "032x")
    except OverflowError:  # an id generator's out-of-range id (an invalid one): as it is
        return format(value, f"0{size * 2}x")


def correlate(event: dict[str, Any]) -> dict[str, Any]:
    """Add time, trace/span ids, the request's scope and structlog's bound contextvars to
    ``event`` (keys already in it win)."""
    event.setdefault("timestamp", time.time())
    context = get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("trace_id", hex_id(context.trace_id, 16))
        event.setdefault("span_id", hex_id(context.span_id, 8))
    scope = CURRENT_REQUEST.get()
    if scope is not None:
        event.setdefault("request_id", scope.request_id)
        event.setdefault("route", scope.route)
        fields = scope.fields
        if fields:
            # copy(): another thread of the same request may bind while we read
            for key, value in fields.copy().items():
                event.setdefault(key, value)
    if _STRUCTLOG_VARS is None:  # a structlog without the registry: the public, slower way
        for key, value in structlog_contextvars.get_contextvars().items():
            event.setdefault(key, value)
    elif _STRUCTLOG_VARS:
        for name, var in list(_STRUCTLOG_VARS.items()):
            value = var.get()
            if value is not Ellipsis:
                event.setdefault(name[_PREFIX_LEN:], value)
    return event


def bind_context(**fields: Any) -> None:
    """Add ``fields`` to every later log line of the current request, from any of its threads
    and tasks, and to its request line; outside a request, bind them as structlog contextvars
    (local to the current context)."""
    scope = CURRENT_REQUEST.get()
    if scope is None:
        structlog_contextvars.bind_contextvars(**fields)
    else:
        scope.fields.update(fields)


def unbind_context(*keys: str) -> None:
    """Remove ``keys`` bound by :func:`bind_context` (missing keys are ignored)."""
    scope = CURRENT_REQUEST.get()
    if scope is None:
        structlog_contextvars.unbind_contextvars(*keys)
    else:
        for key in keys:
            scope.fields.pop(key, None)


def carry_context(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` wrapped to run in a copy of the caller's context, for a plain thread or an
    executor (``loop.run_in_executor`` and ``threading.Thread`` do not copy it; Starlette's
    thread pool, ``asyncio.to_thread`` and asgiref's ``sync_to_async`` do)::

        executor.submit(carry_context(send_invoice), order_id)
    """
    context = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    return run
