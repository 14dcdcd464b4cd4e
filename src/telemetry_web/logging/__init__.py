"""Structured logging: structlog loggers and stdlib records through one off-thread pipeline."""

from __future__ import annotations

from ._context import REQUEST_ID, correlate
from ._loggers import LEVELS, StdlibBridge, make_logger
from ._pipeline import LogPipeline
from ._processors import build_processors, redact
from ._sinks import ConsoleSink, LogSink, render_json

__all__ = [
    "LEVELS",
    "REQUEST_ID",
    "ConsoleSink",
    "LogPipeline",
    "LogSink",
    "StdlibBridge",
    "build_processors",
    "correlate",
    "make_logger",
    "redact",
    "render_json",
]
