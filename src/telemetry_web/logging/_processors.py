"""Event processors, run on the writer thread in this order: defaults (ISO timestamp, service
fields, exception fields), then the configured ``add_fields``/``filter``/``sample``/``redact``
steps as listed; ``redact`` runs last when the list does not place it.

Redaction is always on: the values of keys naming a credential (the rules of
``telemetry_web._redaction``: ``authorization``, ``cookie``, ``password``, ``secret``,
``token``, ``api_key``, ``jwt``, ``sessionid``, ... as a whole key or as words of one:
``db_password``, ``X-Api-Key``, ``refreshToken``) are replaced at any depth, and so are card
numbers, bearer credentials, JWTs, ``password=...`` pairs and the literals databases echo in
their error messages, in every string value, exception message and stack trace; then the
configured ``keys`` (names or globs) and ``patterns`` (regular expressions on string values).
"""

from __future__ import annotations

import fnmatch
import re
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .._redaction import SENSITIVE_NAMES, NameRule, needs_scrub, scrub_text
from ..config._model import LogProcessorSettings
from ..semconv import exception_type
from ._timestamps import iso_utc

__all__ = [
    "REDACTED",
    "SENSITIVE_WORDS",
    "Processor",
    "Redactor",
    "build_processors",
    "finish_event",
    "redact",
]

Processor = Callable[[dict[str, Any]], "dict[str, Any] | None"]

# Key names, or runs of words in a key, whose values are credentials (see _redaction.py).
SENSITIVE_WORDS = tuple(sorted(SENSITIVE_NAMES))
REDACTED = "REDACTED"
_MAX_DEPTH = 20
# Values we make ourselves (ids, times, labels) and the user agent, also a span attribute as
# is: never searched for secrets.
_UNSCANNED = frozenset({
    "timestamp", "level", "logger", "method", "route", "status", "duration_ms", "trace_id",
    "span_id", "request_id", "service", "environment", "user_agent", "client",
})  # fmt: skip
_CLEAN_CACHE = 4096  # short strings known to hold nothing to scrub (event names, paths)

_NUMBERS = (float, int)


def finish_event(event: dict[str, Any], static: dict[str, Any]) -> dict[str, Any]:
    """Timestamp as ISO-8601 UTC, exception as fields, service fields; the standard keys first."""
    # Updating keys already present keeps their position: the standard keys stay first, the
    # event's own values win over the defaults and the static fields.
    ordered: dict[str, Any] = {"timestamp": None, "level": "info", "event": "", "logger": "root"}
    ordered.update(static)
    ordered.update(event)
    ts = ordered["timestamp"]
    if isinstance(ts, _NUMBERS):  # a tuple: no union object built per event
        ordered["timestamp"] = iso_utc(ts)
    exc_info = ordered.pop("exc_info", None)
    if exc_info:
        fields = exception_fields(exc_info)
        if fields is not None:
            ordered["exception"] = fields
    return ordered


def exception_fields(exc_info: Any) -> dict[str, Any] | None:
    """``{type, message, stack}`` for an exception or an ``exc_info`` triple."""
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or len(exc_info) != 3 or exc_info[0] is None:
        return None
    exc_type, exc, tb = exc_info
    return {
        "type": exception_type(exc_type),
        "message": scrub_text(str(exc)),
        "stack": scrub_text("".join(traceback.format_exception(exc_type, exc, tb))),
    }


# --- add_fields, filter, sample ----------------------------------------------------------------


def add_fields(fields: dict[str, Any]) -> Processor:
    """Add ``fields`` to every event that does not carry them already."""

    def add(event: dict[str, Any]) -> dict[str, Any]:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return add


def filter_events(field: str, patterns: Iterable[str]) -> Processor:
    """Drop events whose ``field`` equals one of ``patterns`` or matches one as a glob."""
    patterns = tuple(patterns)
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


_KEEP_ALWAYS = frozenset({"warning", "error", "critical"})


def sample(every: int, events: Iterable[str] = ()) -> Processor:
    """Keep the first of every ``every`` events of each event name (all names, or those
    matching ``events``); warnings and errors are always kept."""
    globs = tuple(events)
    seen: dict[str, int] = {}  # event name -> events seen (writer thread only)
    applies: dict[str, bool] = {}

    def sample_event(event: dict[str, Any]) -> dict[str, Any] | None:
        if event.get("level") in _KEEP_ALWAYS:
            return event
        name = str(event.get("event"))
        chosen = applies.get(name)
        if chosen is None:
            chosen = not globs or any(fnmatch.fnmatchcase(name, g) for g in globs)
            if len(applies) < 10_000:
                applies[name] = chosen
        if not chosen:
            return event
        count = seen.get(name, 0)
        if count == 0 and len(seen) >= 10_000:  # names made of data: start over, stay bounded
            seen.clear()
        seen[name] = count + 1
        return event if count % every == 0 else None

    return sample_event


# --- redact --------------------------------------------------------------------------------------


class Redactor:
    """Replaces sensitive values at any depth of dicts, lists and tuples.

    A key is sensitive when the name rule of ``telemetry_web._redaction`` says so (one of its
    credential names as the whole key or as ``_``, ``-``, ``.`` or camelCase separated words,
    or ``token``/``secret``/``password`` inside it), or matches one of ``keys``
    (case-insensitive globs). String values are scrubbed (card numbers, bearer credentials,
    database echoes: ``scrub_text``), then parts matching one of ``patterns`` become
    ``REDACTED``. Verdicts are cached per key and clean short strings are remembered, so the
    common event (known keys, repeated values) costs a few lookups.
    """

    def __init__(self, keys: Iterable[str] = (), patterns: Iterable[str] = ()) -> None:
        self._rule = NameRule()
        self._globs = tuple(k.lower() for k in keys)
        self._patterns = tuple(re.compile(p) for p in patterns)
        self._verdicts: dict[str, bool] = {}
        self._safe: set[str] = set()  # keys known not to be sensitive
        self._clean: set[str] = set()  # short strings known to hold nothing to scrub

    @property
    def plain(self) -> bool:
        """Whether only the built-in rules apply (no keys, no patterns of the user's)."""
        return not self._globs and not self._patterns

    def clean(self, text: str) -> bool:
        """Whether the built-in rules leave ``text`` as it is (short ones remembered)."""
        return text in self._clean or self._scrub(text) == text

    def sensitive(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            lowered = key.lower()
            verdict = self._rule(key) or any(fnmatch.fnmatchcase(lowered, g) for g in self._globs)
            if len(self._verdicts) < 10_000:
                self._verdicts[key] = verdict
                if not verdict:
                    self._safe.add(key)
        return verdict

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._value(event, 0)
        return result

    def _text(self, value: str) -> str:
        if value not in self._clean:
            value = self._scrub(value)
        for pattern in self._patterns:
            value = pattern.sub(REDACTED, value)
        return value

    def _value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if depth > _MAX_DEPTH:
            return value
        if isinstance(value, dict):
            if not self._patterns and self._untouched(value):
                return value
            result = {}
            for key, item in value.items():
                if isinstance(key, str) and self.sensitive(key):
                    result[key] = REDACTED
                elif key in _UNSCANNED and depth == 0:
                    result[key] = item
                else:
                    result[key] = self._value(item, depth + 1)
            return result
        if isinstance(value, list | tuple):
            return [self._value(v, depth + 1) for v in value]
        return value

    def _scrub(self, value: str) -> str:
        """``value`` scrubbed; a short one found clean is remembered."""
        scrubbed = scrub_text(value) if needs_scrub(value) else value
        if scrubbed == value and len(value) <= 256 and len(self._clean) < _CLEAN_CACHE:
            self._clean.add(value)
        return scrubbed

    def _untouched(self, value: dict[Any, Any]) -> bool:
        """Whether every key is known harmless and every value a plain scalar that holds
        nothing to scrub (the common event): C-level checks and set lookups."""
        if not (
            value.keys() <= self._safe
            and all(map(_SCALARS.__contains__, map(type, value.values())))
        ):
            return False
        clean = self._clean
        # Only the strings of keys that are scanned (a few of an event's: event, path, query).
        for key in value.keys() - _UNSCANNED:
            item = value[key]
            if type(item) is str and item not in clean and self._scrub(item) != item:
                return False
        return True


_SCALARS = frozenset({str, int, float, bool, type(None)})


_default_redactor = Redactor()


def redact(value: Any) -> Any:
    """``value`` with the built-in sensitive keys redacted at any depth."""
    return _default_redactor._value(value, 0)


def build_processors(configured: Sequence[LogProcessorSettings]) -> list[Processor]:
    """The configured steps in order, with redaction last unless the list places it."""
    steps: list[Processor] = []
    placed_redaction = False
    for p in configured:
        if p.type == "add_fields":
            steps.append(add_fields(dict(p.fields)))
        elif p.type == "filter" and p.field:
            steps.append(filter_events(p.field, p.exclude))
        elif p.type == "sample" and p.every is not None:
            steps.append(sample(p.every, p.events))
        elif p.type == "redact":
            steps.append(Redactor(p.keys, p.patterns))
            placed_redaction = True
    if not placed_redaction:
        steps.append(Redactor())
    return steps
