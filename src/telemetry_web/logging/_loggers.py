"""structlog loggers and the standard ``logging`` bridge, both feeding one :class:`LogPipeline`.

:class:`TelemetryLogger` is a structlog bound logger (``bind``, ``unbind``, ``new`` come from
``structlog.BoundLoggerBase``) with the :class:`~structlog.typing.FilteringBoundLogger` methods.
Unlike ``structlog.make_filtering_bound_logger``, whose level is fixed when the class is made,
its level comes from a :class:`~telemetry_web.logging.LevelTable` and follows changes at run
time: a call compares two integers, and looks the level up again only after a change.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from structlog import BoundLoggerBase

from ._context import correlate
from ._levels import LEVEL_NAMES, LEVELS, LevelTable
from ._pipeline import LogPipeline

__all__ = ["StdlibBridge", "TelemetryLogger", "make_logger"]

# LogRecord attributes that are not user-supplied `extra=` fields.
_RECORD_KEYS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class _LoggerState:
    """What every logger bound from one ``get_logger(name)`` shares: the name, where events go,
    and the level last looked up (structlog's 'wrapped logger' slot carries it)."""

    __slots__ = ("generation", "level", "name", "pipeline", "table")

    def __init__(
        self, name: str, table: LevelTable, pipeline: Callable[[], LogPipeline | None]
    ) -> None:
        self.name = name
        self.table = table
        self.pipeline = pipeline
        self.generation = -1
        self.level = 0

    def threshold(self) -> int:
        table = self.table
        if self.generation != table.generation:
            self.generation = table.generation
            self.level = table.level_for(self.name)
        return self.level

    def msg(self, *args: Any, **kwargs: Any) -> None:  # structlog's logger protocol; unused
        return None


class TelemetryLogger(BoundLoggerBase):
    """A structlog bound logger whose events go to the telemetry pipeline, off the caller's
    thread. ``log.info("Loading order", order_id=7)``; ``log.bind(user="ada")``;
    ``log.error("Failed", exc_info=True)`` (or ``log.exception(...)`` inside ``except``)."""

    _logger: _LoggerState

    def _emit(self, number: int, event: Any, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        state = self._logger
        if number < state.threshold():
            return None
        if args:
            event = event % (args[0] if len(args) == 1 and isinstance(args[0], Mapping) else args)
        exc_info = kw.get("exc_info")
        if exc_info is True:
            kw["exc_info"] = sys.exc_info()
        elif exc_info is False:
            del kw["exc_info"]
        record = {**self._context, **kw}
        record["event"] = event
        record["level"] = LEVEL_NAMES[number]
        record.setdefault("logger", state.name)
        pipeline = state.pipeline()
        if pipeline is not None:
            pipeline.submit(correlate(record))
        return None

    # --- level introspection ------------------------------------------------------------------

    def is_enabled_for(self, level: int) -> bool:
        return level >= self._logger.threshold()

    def get_effective_level(self) -> int:
        return self._logger.threshold()

    # --- the logging methods ------------------------------------------------------------------

    def debug(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(10, event, args, kw)

    def info(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(20, event, args, kw)

    def warning(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(30, event, args, kw)

    def error(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(40, event, args, kw)

    def critical(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(50, event, args, kw)

    def exception(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._emit(40, event, args, kw)

    def log(self, level: int, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(level if level in LEVEL_NAMES else _nearest(level), event, args, kw)

    warn = warning
    err = error
    fatal = critical
    msg = info

    # The async variants: submitting never blocks, so they need no executor.

    async def adebug(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(10, event, args, kw)

    async def ainfo(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(20, event, args, kw)

    async def awarning(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(30, event, args, kw)

    async def aerror(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(40, event, args, kw)

    async def acritical(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self._emit(50, event, args, kw)

    async def aexception(self, event: Any = None, *args: Any, **kw: Any) -> Any:
        kw.setdefault("exc_info", True)
        return self._emit(40, event, args, kw)

    async def alog(self, level: int, event: Any = None, *args: Any, **kw: Any) -> Any:
        return self.log(level, event, *args, **kw)

    awarn = awarning
    afatal = acritical
    amsg = ainfo


def _nearest(level: int) -> int:
    """A numeric level that is not one of ours, as the next lower one (15 -> debug)."""
    below = [n for n in LEVEL_NAMES if n <= level]
    return max(below) if below else LEVELS["debug"]


def make_logger(
    pipeline: Callable[[], LogPipeline | None], name: str, levels: LevelTable
) -> TelemetryLogger:
    """A logger named ``name`` whose events go to whatever pipeline ``pipeline()`` returns at
    the time of the call (loggers made before a ``configure_logging`` keep delivering), at the
    level ``levels`` gives ``name`` at the time of the call."""
    return TelemetryLogger(_LoggerState(name, levels, pipeline), (), {})


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
