"""structlog loggers and the standard ``logging`` bridge, both feeding one :class:`LogPipeline`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from ._context import correlate
from ._pipeline import LogPipeline

__all__ = ["StdlibBridge", "make_logger"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}

# LogRecord attributes that are not user-supplied `extra=` fields.
_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class _Sink:
    """structlog's 'logger': never called, the last processor hands the event to the pipeline."""

    def msg(self, *args: Any, **kwargs: Any) -> None:
        return None


def make_logger(
    pipeline: Callable[[], LogPipeline | None], name: str, level: str
) -> FilteringBoundLogger:
    """A structlog logger whose events go to whatever pipeline ``pipeline()`` returns at the
    time of the call, so loggers made before a ``configure_logging`` keep delivering."""

    def enqueue(_logger: Any, method: str, event: Any) -> Any:
        if method == "exception":
            event.setdefault("exc_info", True)
        if event.get("exc_info") is True:
            import sys

            event["exc_info"] = sys.exc_info()
        event["level"] = "error" if method == "exception" else method
        current = pipeline()
        if current is not None:
            current.submit(correlate(event))
        raise structlog.DropEvent

    wrapper: Any = structlog.make_filtering_bound_logger(LEVELS[level])
    logger: FilteringBoundLogger = wrapper(_Sink(), processors=[enqueue], context={"logger": name})
    return logger


class StdlibBridge(logging.Handler):
    """Sends standard ``logging`` records through the same pipeline, with the same ids."""

    def __init__(self, pipeline: LogPipeline) -> None:
        super().__init__()
        self.pipeline = pipeline

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event: dict[str, Any] = {
                "event": record.getMessage(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "timestamp": record.created,
            }
            for key, value in record.__dict__.items():
                if key not in _RECORD_KEYS and not key.startswith("_"):
                    event[key] = value
            if record.exc_info:
                event["exc_info"] = record.exc_info
            self.pipeline.submit(correlate(event))
        except Exception:
            self.handleError(record)
