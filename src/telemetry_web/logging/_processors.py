"""Event processors run on the writer thread, in order: defaults, exception fields, the
configured ``add_fields``/``filter`` steps, then redaction of sensitive keys at any depth."""

from __future__ import annotations

import fnmatch
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from ..config._model import LogProcessor

__all__ = ["Processor", "build_processors", "finish_event", "redact"]

Processor = Callable[[dict[str, Any]], "dict[str, Any] | None"]

SENSITIVE_KEYS = frozenset(
    {"authorization", "cookie", "set-cookie", "set_cookie", "password", "passwd", "secret",
     "token", "api_key", "apikey", "access_token", "refresh_token", "client_secret"}
)  # fmt: skip
REDACTED = "REDACTED"


_second: list[Any] = [None, ""]  # (whole second, its ISO prefix): one strftime per second


def iso_utc(ts: float) -> str:
    """``2026-11-29T22:18:10.883Z`` for an epoch timestamp."""
    whole = int(ts)
    if _second[0] != whole:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second[0] = whole
    return f"{_second[1]}.{int((ts - whole) * 1000):03d}Z"


def finish_event(event: dict[str, Any], static: dict[str, Any]) -> dict[str, Any]:
    """Timestamp as ISO-8601 UTC, exception as fields, service fields; the standard keys first."""
    ts = event.pop("timestamp", None)
    ordered: dict[str, Any] = {
        "timestamp": iso_utc(ts) if isinstance(ts, float | int) else ts,
        "level": event.pop("level", "info"),
        "event": event.pop("event", ""),
        "logger": event.pop("logger", "root"),
    }
    for key, value in static.items():
        ordered[key] = event.pop(key, value)
    exc_info = event.pop("exc_info", None)
    ordered.update(event)
    if exc_info:
        ordered["exception"] = exception_fields(exc_info)
    return ordered


def exception_fields(exc_info: Any) -> dict[str, Any] | Any:
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[0] is None:
        return None
    exc_type, exc, tb = exc_info
    return {
        "type": f"{exc_type.__module__}.{exc_type.__qualname__}"
        if exc_type.__module__ != "builtins"
        else exc_type.__qualname__,
        "message": str(exc),
        "stack": "".join(traceback.format_exception(exc_type, exc, tb)),
    }


def _add_fields(fields: dict[str, Any]) -> Processor:
    def add_fields(event: dict[str, Any]) -> dict[str, Any]:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return add_fields


def _filter(field: str, patterns: tuple[str, ...]) -> Processor:
    exact = frozenset(p for p in patterns if not any(c in p for c in "*?["))
    globs = tuple(p for p in patterns if p not in exact)

    def filter_event(event: dict[str, Any]) -> dict[str, Any] | None:
        value = event.get(field)
        if value is None:
            return event
        text = str(value)
        if text in exact or any(fnmatch.fnmatchcase(text, g) for g in globs):
            return None
        return event

    return filter_event


_safe_keys: set[str] = set()  # keys already known not to be sensitive (writer thread only)


def redact(value: Any, keys: frozenset[str] = SENSITIVE_KEYS, depth: int = 0) -> Any:
    """Replace the values of sensitive keys at any depth of dicts and lists.

    The common event (known, harmless keys and scalar values) is returned as it is.
    """
    if depth > 20:
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in _safe_keys or isinstance(item, dict | list | tuple):
                break
        else:
            return value
        result = {}
        for key, item in value.items():
            if isinstance(key, str):
                if key.lower() in keys:
                    result[key] = REDACTED
                    continue
                if len(_safe_keys) < 10_000:
                    _safe_keys.add(key)
            result[key] = redact(item, keys, depth + 1)
        return result
    if isinstance(value, list | tuple):
        return [redact(v, keys, depth + 1) for v in value]
    return value


def build_processors(configured: Sequence[LogProcessor]) -> list[Processor]:
    steps: list[Processor] = []
    for p in configured:
        if p.type == "add_fields":
            steps.append(_add_fields(dict(p.fields)))
        elif p.type == "filter" and p.field:
            steps.append(_filter(p.field, p.exclude))
    return steps
