"""Event processors run on the writer thread, in order: defaults, exception fields, the
configured ``add_fields``/``filter`` steps, then redaction of sensitive keys at any depth."""

from __future__ import annotations

import fnmatch
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from ..config._model import LogProcessor

__all__ = ["Processor", "build_processors", "finish_event", "redact"]

Processor = Callable[[dict[str, Any]], "dict[str, Any] | None"]

SENSITIVE_KEYS = frozenset(
    {"authorization", "cookie", "set-cookie", "set_cookie", "password", "passwd", "secret",
     "token", "api_key", "apikey", "access_token", "refresh_token", "client_secret"}
)  # fmt: skip
REDACTED = "REDACTED"


def finish_event(event: dict[str, Any], static: dict[str, Any]) -> dict[str, Any]:
    """Timestamp as ISO-8601 UTC, exception as fields, service fields; the standard keys first."""
    ts = event.pop("timestamp", None)
    stamp = (
        datetime.fromtimestamp(ts, timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
        if isinstance(ts, float | int)
        else ts
    )
    ordered: dict[str, Any] = {
        "timestamp": stamp,
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


def redact(value: Any, keys: frozenset[str] = SENSITIVE_KEYS, depth: int = 0) -> Any:
    """Replace the values of sensitive keys at any depth of dicts and lists."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and k.lower() in keys else redact(v, keys, depth + 1)
            for k, v in value.items()
        }
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
