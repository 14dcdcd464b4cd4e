"""Log levels per logger name, changeable while the loggers made from them are in use.

A structlog logger made by :func:`~telemetry_web.logging._loggers.make_logger` keeps the table
and the table's ``generation`` at the time it last looked its level up; a call compares the two
numbers and looks the level up again only when the table changed. Standard ``logging`` loggers
get the same levels through ``Logger.setLevel``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

__all__ = ["LEVELS", "LEVEL_NAMES", "LevelTable", "level_number"]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
LEVEL_NAMES = {number: name for name, number in LEVELS.items()}


def level_number(level: str) -> int:
    """``"warning"`` -> 30.

    Raises:
        ValueError: naming the accepted level names.
    """
    try:
        return LEVELS[level.lower()]
    except (KeyError, AttributeError):
        choices = ", ".join(repr(name) for name in LEVELS)
        raise ValueError(f"expected a log level, one of {choices}, got {level!r}") from None


class LevelTable:
    """The default level and the per-name overrides; a dotted name inherits its parent's."""

    def __init__(self, default: str = "info", levels: Mapping[str, str] | None = None) -> None:
        self.generation = 0
        self._lock = threading.Lock()
        self._default = LEVELS["info"]
        self._levels: dict[str, int] = {}
        self._cache: dict[str, int] = {}
        self._stdlib_names: set[str] = set()  # standard loggers whose level we set
        self.configure(default, levels or {})

    def configure(self, default: str, levels: Mapping[str, str]) -> None:
        """Replace the default level and every override; loggers follow on their next call."""
        numbers = {name: level_number(level) for name, level in levels.items()}
        with self._lock:
            # A new cache, not a cleared one: a reader holding the old one stays consistent.
            self._default, self._levels, self._cache = level_number(default), numbers, {}
            self.generation += 1

    def level_for(self, name: str) -> int:
        """The level of logger ``name``: its own, its nearest dotted parent's, or the default."""
        cache = self._cache
        found = cache.get(name)
        if found is not None:
            return found
        levels, probe = self._levels, name
        number = self._default
        while probe:
            if probe in levels:
                number = levels[probe]
                break
            probe = probe.rpartition(".")[0]
        if len(cache) < 10_000:
            cache[name] = number
        return number

    def apply_to_stdlib(self) -> None:
        """Set the root logger's level and each override's on the standard loggers; names no
        longer overridden go back to inheriting (NOTSET)."""
        with self._lock:
            levels = dict(self._levels)
            default = self._default
        for name in self._stdlib_names - set(levels):
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger().setLevel(default)
        for name, number in levels.items():
            logging.getLogger(name).setLevel(number)
        self._stdlib_names = set(levels)
