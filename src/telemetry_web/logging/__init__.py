"""Structured logging: structlog loggers and stdlib records through one off-thread pipeline.

Callers build an event dict (:mod:`._context` adds time, trace and request ids); the writer
thread (:mod:`._pipeline`) applies the processors (:mod:`._processors`) and hands batches to the
sinks: console (:mod:`._sinks`), file (:mod:`._file`), Elasticsearch (:mod:`._elasticsearch`).

For application code::

    from telemetry_web.logging import bind_context, carry_context

    bind_context(user=user.id)             # on every later line of this request, any thread
    executor.submit(carry_context(work))   # a plain executor: take the request's context along
"""

from __future__ import annotations

from ._build import build_sinks
from ._context import (
    CURRENT_REQUEST,
    RequestScope,
    bind_context,
    carry_context,
    correlate,
    unbind_context,
)
from ._elasticsearch import ElasticsearchSink
from ._file import FileSink
from ._levels import LEVEL_NAMES, LEVELS, LevelTable, level_number
from ._loggers import StdlibBridge, TelemetryLogger, make_logger
from ._pipeline import LogPipeline
from ._processors import Redactor, build_processors, redact
from ._sinks import ConsoleSink, EventBatch, LogSink, json_lines, render_json

__all__ = [
    "CURRENT_REQUEST",
    "LEVELS",
    "LEVEL_NAMES",
    "ConsoleSink",
    "ElasticsearchSink",
    "EventBatch",
    "FileSink",
    "LevelTable",
    "LogPipeline",
    "LogSink",
    "Redactor",
    "RequestScope",
    "StdlibBridge",
    "TelemetryLogger",
    "bind_context",
    "build_processors",
    "build_sinks",
    "carry_context",
    "correlate",
    "json_lines",
    "level_number",
    "make_logger",
    "redact",
    "render_json",
    "unbind_context",
]
