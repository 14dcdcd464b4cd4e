"""Keeping secrets out of spans, logs and the store: one rule set, used by every part.

- **Names** (:class:`NameRule`): a query parameter, log field, header, Redis key or SQL
  parameter name is sensitive when, decoded and lower-cased, it is one of
  :data:`SENSITIVE_NAMES` (as the whole name or one of its ``_ - . :`` or camelCase separated
  words: ``api_key``, ``X-Auth``, ``sessionId``), or contains ``token``, ``secret`` or
  ``password`` not followed by another letter (``accessToken``, ``mysecret``, ``db_password``;
  not ``tokens_used`` or ``secretary``). Query parameters (and Redis keys) also treat
  :data:`URL_NAMES` (``key``, ``code``) as sensitive: in a URL they are an API key and an OAuth
  code, in a log field (``status_code``, ``cache_key``) they are ordinary.
- **Headers**: :data:`ALWAYS_REDACTED_HEADERS`, the configured ``http.redact_headers`` and any
  name the name rule calls sensitive (``X-Auth-Token``) are recorded as ``REDACTED``.
- **Text** (:func:`scrub_text`): card numbers (Luhn-checked), bearer/basic credentials, JWTs,
  ``user:password@`` in URLs and ``password=…``-like pairs become ``REDACTED``; so do what
  databases echo back in exception messages: SQLAlchemy's ``[parameters: …]`` (its ``[SQL: …]``
  keeps the statement with literals replaced by ``?``), PostgreSQL's ``LINE n: …``,
  ``QUERY:``, ``CONTEXT:`` and ``STATEMENT:`` lines and the values of ``DETAIL:`` lines, and
  MySQL's ``Duplicate entry '…'``. Applied to span status descriptions, exception events and
  log lines (their exception fields and every string value).
"""

from __future__ import annotations

import itertools
import re
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from . import semconv

__all__ = [
    "ALWAYS_REDACTED_HEADERS",
    "REDACTED",
    "SENSITIVE_NAMES",
    "URL_NAMES",
    "NameRule",
    "QueryRedactor",
    "describe_exception",
    "exception_attributes",
    "header_redactor",
    "needs_scrub",
    "scrub_text",
    "scrub_value",
]

REDACTED = semconv.REDACTED

#: Names (whole, or as one word of a name) whose values are credentials, everywhere.
SENSITIVE_NAMES = frozenset({
    "apikey", "api_key", "auth", "authorization", "client_secret", "cookie", "cookies",
    "credentials", "jwt", "passwd", "password", "secret", "sessionid", "session_id",
    "set-cookie", "sig", "signature", "token",
})  # fmt: skip
#: Query parameter names (whole, or as one word) that are credentials in a URL only.
URL_NAMES = frozenset({"key", "code"})
#: Substrings that make any name sensitive, unless another letter follows.
_FRAGMENTS = re.compile(r"(?:token|secret|password)(?![a-z])")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[\s_.:\-]+")

#: Request and response headers recorded as ``REDACTED`` even when asked for.
ALWAYS_REDACTED_HEADERS = frozenset({
    "authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key",
})  # fmt: skip


class NameRule:
    """Whether a name (query parameter, log field, header, key) names a credential.

    Verdicts are cached (bounded), so the names an application uses cost one lookup each.

    Args:
        extra_names: more names, matched as whole names or words (case-insensitive).
        url: also treat :data:`URL_NAMES` as sensitive (query parameters).
    """

    def __init__(self, extra_names: Iterable[str] = (), *, url: bool = False) -> None:
        names = set(SENSITIVE_NAMES) | {n.lower() for n in extra_names}
        if url:
            names |= URL_NAMES
        self.names = frozenset(names)
        self._verdicts: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        verdict = self._verdicts.get(name)
        if verdict is None:
            verdict = self._decide(name)
            if len(self._verdicts) < 10_000:
                self._verdicts[name] = verdict
        return verdict

    def _decide(self, name: str) -> bool:
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        lowered = name.lower().strip()
        if lowered in self.names or _FRAGMENTS.search(lowered):
            return True
        words = _WORD_SPLIT.split(_CAMEL.sub("_", name.strip()).lower())
        return any(word in self.names for word in words) or (
            # "client_secret", "session_id": names made of two words
            any(f"{a}_{b}" in self.names for a, b in itertools.pairwise(words))
        )


class QueryRedactor:
    """Replaces the values of sensitive query parameters by ``REDACTED``, keeping the rest of
    the query string as it was. Names are decoded first (``%74oken``, ``api%5Fkey``)."""

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        self.rule = NameRule(extra_names, url=True)
        self._hints = tuple(sorted(self.rule.names | {"token", "secret", "password"}))

    def __call__(self, query: str) -> str:
        if not query:
            return query
        lowered = query.lower()
        if "%" in lowered or "+" in lowered:
            lowered = unquote_plus(lowered)
        if not any(hint in lowered for hint in self._hints):
            return query  # the common case costs one scan per hint
        parts = query.split("&")
        for index, part in enumerate(parts):
            name, equals, _ = part.partition("=")
            if equals and self.rule(name):
                parts[index] = f"{name}={REDACTED}"
        return "&".join(parts)


def header_redactor(extra_names: Iterable[str] = ()) -> NameRule:
    """The rule for header names: the always-redacted headers, ``extra_names`` and the
    credential names (``X-Auth-Token``)."""
    return NameRule((*ALWAYS_REDACTED_HEADERS, *extra_names))


# --- text ------------------------------------------------------------------------------------

# Lower-case fragments of anything the rules below act on: most text contains none of them,
# and plain substring tests cost far less than one case-insensitive regular expression.
_HINTS = (
    "bearer", "basic", "token", "digest", "eyj", "@", "[sql", "[parameters", "line ", "detail:",
    "query:", "context:", "statement:", "duplicate entry", "invalid input", "at or near",
    "passw", "secret", "apikey", "api_key", "api-key", "jwt", "sessionid", "session_id",
    "credential", "auth", "://",
)  # fmt: skip
# One search for any of them (of the lower-cased text): the same answer as a scan per hint.
_ANY_HINT = re.compile("|".join(map(re.escape, _HINTS)))
_DIGIT_RUN = re.compile(r"[2-6][\d -]{11,}\d")
# 13 to 19 digits, spaces or dashes between them, starting as card numbers do (2 to 6).
_CARD = re.compile(r"(?<![\d.])[2-6](?:[ -]?\d){12,18}(?![\d.])")
_AUTH_SCHEME = re.compile(r"\b([Bb]earer|[Bb]asic|[Tt]oken|[Dd]igest)(\s+)[A-Za-z0-9._~+/=-]{6,}")
_JWT = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_URL_QUERY = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s?#'\"<>]*\?)([^\s#'\"<>]+)")
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@:]*:[^/\s@]*@")
_PAIR = re.compile(
    r"""(?ix)
    ( ["']? [\w.-]*?
      (?:(?:password|passwd|secret|token)(?![a-z])|api[_-]?key|jwt|sessionid|session_id|credentials
        |client_secret|authorization|auth(?![a-z]))
      [\w.-]* ["']? )
    ( \s*[=:]\s* )
    ( "[^"]*" | '[^']*' | (?!REDACTED)[^\s&,;'"})\]]+ )
    """
)
_SQL = re.compile(
    r"\[SQL: (.*?)\](?=\n\[parameters: |\n\[SQL parameters hidden|\n\(Background on this"
    r"|\n\n|\s*\Z)",
    re.S,
)
_PARAMETERS = re.compile(r"^\[parameters: .*$", re.M)
_ECHO_LINES = re.compile(r"^(\s*)(LINE \d+|QUERY|CONTEXT|STATEMENT):.*$", re.M)
_CARET = re.compile(r"^\s+\^\s*$\n?", re.M)
_DETAIL_KEY = re.compile(
    r"^(\s*DETAIL:[ \t]+Key \([^)\n]*\)=\().*?(\)(?: already exists| is not present|\.?$))", re.M
)
_DETAIL_OTHER = re.compile(r"^(\s*DETAIL:[ \t]+)(?![ \t]|Key \(|REDACTED).*$", re.M)
_DUPLICATE = re.compile(r"Duplicate entry '(?:[^'\\]|\\.)*'")
_NEAR = re.compile(r"(at or near )\"(?=[^\"\n]*['\d$])[^\"\n]*\"")
_INVALID_INPUT = re.compile(r"(invalid input (?:syntax|value) for [^:\n]*: )\"[^\"\n]*\"")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(" ", "").replace("-", "")
    return REDACTED if 13 <= len(digits) <= 19 and _luhn(digits) else text


def _sql(match: re.Match[str]) -> str:
    from .instrumentors._sql import sanitize  # the instrumentors' sanitizer; no cycle at import

    return f"[SQL: {sanitize(match.group(1))[0]}]"


def _pair(match: re.Match[str]) -> str:
    value = match.group(3)
    quote = value[0] if value[0] in "'\"" else ""
    return f"{match.group(1)}{match.group(2)}{quote}{REDACTED}{quote}"


def _url_query(match: re.Match[str]) -> str:
    return match.group(1) + _DEFAULT_QUERY(match.group(2))


def scrub_text(text: str) -> str:
    """``text`` with card numbers, credentials and database echoes of literals redacted."""
    if not needs_scrub(text):
        return text
    if "[SQL: " in text:
        text = _SQL.sub(_sql, text)
    if "[parameters: " in text:
        text = _PARAMETERS.sub(f"[parameters: {REDACTED}]", text)
    if ":" in text:
        text = _ECHO_LINES.sub(rf"\1\2: {REDACTED}", text)
        if "^" in text:
            text = _CARET.sub("", text)
        if "DETAIL:" in text:
            text = _DETAIL_KEY.sub(rf"\1{REDACTED}\2", text)
            text = _DETAIL_OTHER.sub(rf"\1{REDACTED}", text)
        text = _USERINFO.sub(rf"\1{REDACTED}:{REDACTED}@", text)
        if "?" in text:
            text = _URL_QUERY.sub(_url_query, text)
    if "at or near" in text:
        text = _NEAR.sub(rf'\1"{REDACTED}"', text)
    if "invalid input" in text:
        text = _INVALID_INPUT.sub(rf'\1"{REDACTED}"', text)
    if "Duplicate entry" in text:
        text = _DUPLICATE.sub(f"Duplicate entry '{REDACTED}'", text)
    text = _CARD.sub(_card, text)
    text = _AUTH_SCHEME.sub(rf"\1\2{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    return _PAIR.sub(_pair, text)


def needs_scrub(text: str) -> bool:
    """Whether :func:`scrub_text` could change ``text`` (one regular expression search)."""
    if len(text) < 4:
        return False
    return _ANY_HINT.search(text.lower()) is not None or _DIGIT_RUN.search(text) is not None


def scrub_value(value: Any) -> Any:
    """A span attribute value with :func:`scrub_text` applied to its strings."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, tuple | list):
        return tuple(scrub_text(v) if isinstance(v, str) else v for v in value)
    return value


def describe_exception(exception: BaseException) -> str:
    """``Type: message`` for a span's error status, scrubbed."""
    return scrub_text(f"{type(exception).__name__}: {exception}")


def exception_attributes(exception: BaseException, escaped: bool = False) -> dict[str, Any]:
    """The ``exception`` event's attributes, message and stack trace scrubbed."""
    return {
        "exception.type": semconv.exception_type(type(exception)),
        "exception.message": scrub_text(str(exception)),
        "exception.stacktrace": scrub_text("".join(traceback.format_exception(exception))),
        "exception.escaped": str(escaped),
    }


_DEFAULT_QUERY = QueryRedactor()
