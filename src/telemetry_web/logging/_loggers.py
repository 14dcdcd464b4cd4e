"""structlog loggers and the standard ``logging`` bridge, both feeding one :class:`LogPipeline`.

:class:`TelemetryLogger` is a structlog bound logger (``bind``, ``unbind``, ``new`` come from
``structlog.BoundLoggerBase``) with the :class:`~structlog.typing.FilteringBoundLogger` methods.
Unlike ``structlog.make_filtering_bound_logger``, whose level is fixed when the class is made,
its level comes from a :class:`~telemetry_web.logging._levels.LevelTable` and follows changes at
run time: a call compares two integers, and looks the level up again only after a change.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

from structlog import BoundLoggerBase

from ._context import correlate
from ._levels import LEVEL_NAMES, LEVELS, LevelTable
from ._pipeline import LogPipeline
from ._sinks import ConsoleSink

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
    """Sends standard ``logging`` records through the same pipeline, with the same ids.

    It sits on the root logger. When the pipeline prints to the console, a record that reaches
    it must not also be printed by a plain console handler on its way up (werkzeug's own
    handler, a ``logging.basicConfig`` handler on the root): those handlers get a filter that
    lets a record through only when no bridge printing to the console will see it, so each line
    appears once, as the pipeline renders it. Loggers that do not propagate to the root
    (uvicorn's and gunicorn's) never reach the bridge and keep printing through their own
    handlers. Handlers added after the bridge are found on their first record (that one record
    is printed twice); removing the bridge lets every filtered handler print again.
    """

    def __init__(self, pipeline: LogPipeline) -> None:
        super().__init__()
        self.pipeline = pipeline
        # Sinks are fixed for a pipeline's lifetime (configure_logging builds a new one).
        self.prints_to_console = any(isinstance(s, ConsoleSink) for s in pipeline.sinks)
        if self.prints_to_console:
            for logger in _loggers_reaching_root():
                _quiet_console_handlers(logger)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if "\x1b[" in message:  # werkzeug colours its access lines even into a pipe
                message = _ANSI.sub("", message)
            event: dict[str, Any] = {
                "event": message,
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
            if self.prints_to_console:
                _quiet_chain(record.name)
        except Exception:
            self.handleError(record)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_CONSOLE_STREAMS = ("stdout", "stderr", "__stdout__", "__stderr__")


def _is_console_handler(handler: logging.Handler) -> bool:
    """A handler printing to this process's stdout or stderr (files and sockets are not)."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    stream = handler.stream
    return any(stream is getattr(sys, name, None) for name in _CONSOLE_STREAMS)


def _logger_named(name: str) -> logging.Logger | None:
    """The existing logger ``name`` (the root for ``"root"``), without creating one."""
    if name == "root":
        return logging.getLogger()
    found = logging.Logger.manager.loggerDict.get(name)
    return found if isinstance(found, logging.Logger) else None


def _chain(logger: logging.Logger) -> tuple[list[logging.Logger], bool]:
    """The loggers whose handlers a record of ``logger`` passes, and whether the root is last."""
    loggers: list[logging.Logger] = []
    current: logging.Logger | None = logger
    while current is not None:
        loggers.append(current)
        if not current.propagate:
            return loggers, current.parent is None
        current = current.parent
    return loggers, True


def _loggers_reaching_root() -> list[logging.Logger]:
    found = [logging.getLogger()]
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and _chain(logger)[1]:
            found.append(logger)
    return found


class _PrintedByBridge(logging.Filter):
    """On a console handler: drop the records that a bridge printing to the console sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger = _logger_named(record.name)
        if logger is None or not _chain(logger)[1]:
            return True
        for handler in logging.getLogger().handlers:
            if (
                isinstance(handler, StdlibBridge)
                and handler.prints_to_console
                and record.levelno >= handler.level
            ):
                return False
        return True


_PRINTED_BY_BRIDGE = _PrintedByBridge()


def _quiet_console_handlers(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        if _is_console_handler(handler) and _PRINTED_BY_BRIDGE not in handler.filters:
            handler.addFilter(_PRINTED_BY_BRIDGE)


def _quiet_chain(name: str) -> None:
    """Filter console handlers added after the bridge on the way of a record of ``name``."""
    logger = _logger_named(name)
    if logger is None:
        return
    loggers, reaches_root = _chain(logger)
    if reaches_root:
        for each in loggers:
            if each.handlers:
                _quiet_console_handlers(each)
