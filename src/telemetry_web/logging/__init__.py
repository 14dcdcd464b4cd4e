"""Structured logging: structlog loggers and stdlib records through one off-thread pipeline.

Callers build an event dict (:mod:`._context` adds time, trace and request ids); the writer
thread (:mod:`._pipeline`) applies the processors (:mod:`._processors`) and hands batches to the
sinks: console (:mod:`._sinks`), file (:mod:`._file`), Elasticsearch (:mod:`._elasticsearch`),
OTLP (:mod:`._otlp`). A sink of your own is any object with ``write(events)``
(:class:`LogSink`), given to ``Telemetry(log_sinks=[...])``.

For application code::

    from telemetry_web.logging import bind_context, carry_context

    bind_context(user=user.id)             # on every later line of this request, any thread
    executor.submit(carry_context(work))   # a plain executor: take the request's context along
"""

from __future__ import annotations

from ._context import bind_context, carry_context, unbind_context
from ._elasticsearch import ElasticsearchSink
from ._file import FileSink
from ._otlp import OtlpLogSink
from ._sinks import ConsoleSink, LogSink

__all__ = [
    "ConsoleSink",
    "ElasticsearchSink",
    "FileSink",
    "LogSink",
    "OtlpLogSink",
    "bind_context",
    "carry_context",
    "unbind_context",
]
