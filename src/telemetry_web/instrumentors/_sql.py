"""SQL text as it may be recorded: every literal replaced by ``?``, comments removed.

``sanitize("SELECT * FROM users WHERE name = 'ada' AND id > 42")`` gives
``("SELECT * FROM users WHERE name = ? AND id > ?", "SELECT")``: the statement for
``db.query.text`` and the slow-query log, and its operation name for ``db.operation.name`` and
the metric label. Identifiers (``table1``, ``"Quoted 2"``), bind parameters (``%(name)s``,
``:name``, ``$1``, ``?``) and keywords are kept; string literals (standard, ``E''``, ``X''``,
``N''``, dollar-quoted), numbers, and comments (which may carry user data) are not. A string
literal left open runs to the end of the text, so a truncated statement never leaks its tail.

Statements repeat, so results are cached (short statements only: an ``INSERT`` with thousands of
inline values is sanitized each time and never kept).

Bound parameters are recorded only when asked for (``record_parameters=True``):
:func:`parameter_attributes` and :func:`parameters_for_log` shorten each value, record the
value of a parameter whose name names a credential (``password``, ``api_token``: the rules of
``telemetry_web._redaction``) as ``REDACTED`` and scrub the others (card numbers, bearer
credentials).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from .. import semconv as sc
from .._redaction import REDACTED, NameRule, scrub_text

__all__ = ["MAX_QUERY_TEXT", "parameter_attributes", "parameters_for_log", "sanitize"]

MAX_QUERY_TEXT = 2048  # characters of sanitized text kept on spans and log lines
_CACHEABLE = 4096  # statements longer than this are not cached
_MAX_PARAMETER = 256  # characters of one recorded parameter value
_SENSITIVE_NAME = NameRule()

# The operation names kept as such; anything else is OTHER (the metric label stays bounded).
_OPERATIONS = frozenset({
    "ALTER", "ANALYZE", "BEGIN", "CALL", "CLOSE", "COMMIT", "COPY", "CREATE", "DEALLOCATE",
    "DECLARE", "DELETE", "DO", "DROP", "END", "EXEC", "EXECUTE", "EXPLAIN", "FETCH", "GRANT",
    "INSERT", "LISTEN", "LOCK", "MERGE", "NOTIFY", "PRAGMA", "PREPARE", "REFRESH", "RELEASE",
    "REPLACE", "RESET", "REVOKE", "ROLLBACK", "SAVEPOINT", "SELECT", "SET", "SHOW", "START",
    "TABLE", "TRUNCATE", "UPDATE", "UPSERT", "VACUUM", "VALUES", "WITH",
})  # fmt: skip

# One alternation, tried left to right at each position: the first group that matches decides.
# A word is consumed whole, so the digits of `table1` are never taken for a number.
_TOKEN = r"""
  (?P<comment>{comment})                                          # comment: removed
| (?P<string>{string})                                            # string literal: ?
| (?P<ident>{ident})                                              # quoted identifier: kept
| (?P<param>\$\d+|%\(\w+\)s|%s|::?\w+|\?)                         # bind parameter, cast: kept
| (?P<word>[A-Za-z_][A-Za-z_0-9$]*)                               # keyword, identifier: kept
| (?P<number>0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)   # number literal: ?
"""
_COMMENT = r"--[^\n]*|/\*.*?(?:\*/|\Z)"
# PostgreSQL, SQLite, standard SQL: 'it''s', E'it\'s', N'', X'', B'', U&'', $$...$$, $tag$...$tag$.
_STANDARD = re.compile(
    _TOKEN.format(
        comment=_COMMENT,
        string=r"[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z)"
        r"|(?:[NnXxBb]|[Uu]&)?'(?:[^']|'')*(?:'|\Z)"
        r"|\$(?P<tag>[A-Za-z_]\w*|)\$.*?(?:\$(?P=tag)\$|\Z)",
        ident=r'"(?:[^"]|"")*"',
    ),
    re.S | re.X,
)
# MySQL, MariaDB: backslash escapes, "..." is a string too (ANSI_QUOTES off), # comments.
_BACKSLASH = re.compile(
    _TOKEN.format(
        comment=_COMMENT + r"|\#[^\n]*",
        string=r"(?:[NnXxBb]|_\w+)?'(?:[^'\\]|''|\\.)*(?:'|\Z)|\"(?:[^\"\\]|\"\"|\\.)*(?:\"|\Z)",
        ident=r"`(?:[^`]|``)*`",
    ),
    re.S | re.X,
)


def sanitize(statement: str, *, backslash_escapes: bool = False) -> tuple[str, str]:
    """``(text, operation)``: the statement with literals replaced by ``?`` and comments removed
    (at most :data:`MAX_QUERY_TEXT` characters), and its upper-case operation name.

    Args:
        statement: the SQL text as the driver receives it.
        backslash_escapes: the dialect escapes quotes with a backslash inside strings and
            quotes strings with ``"`` too (MySQL, MariaDB).
    """
    if len(statement) <= _CACHEABLE:
        return _cached(statement, backslash_escapes)
    return _sanitize(statement, backslash_escapes)


@lru_cache(maxsize=1024)
def _cached(statement: str, backslash_escapes: bool) -> tuple[str, str]:
    return _sanitize(statement, backslash_escapes)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "string" or kind == "number":
        return "?"
    if kind == "comment":
        return " "
    return match.group(0)


def _sanitize(statement: str, backslash_escapes: bool) -> tuple[str, str]:
    pattern = _BACKSLASH if backslash_escapes else _STANDARD
    text = " ".join(pattern.sub(_replace, statement).split())
    if len(text) > MAX_QUERY_TEXT:
        text = text[: MAX_QUERY_TEXT - 3] + "..."
    return text, _operation(text)


def _operation(text: str) -> str:
    word = text.lstrip("( \t\n").split(None, 1)
    if not word:
        return "OTHER"
    first = word[0].rstrip("(;").upper()
    return first if first in _OPERATIONS else "OTHER"


# --- bound parameters, recorded only when asked for ------------------------------------------


def _short(value: Any, name: Any = None) -> str:
    if isinstance(name, str) and _SENSITIVE_NAME(name):
        return REDACTED
    text = value if isinstance(value, str) else repr(value)
    text = text if len(text) <= _MAX_PARAMETER else text[: _MAX_PARAMETER - 3] + "..."
    return scrub_text(text)


def parameter_attributes(parameters: Any) -> dict[str, str]:
    if isinstance(parameters, dict):
        items: Iterable[tuple[Any, Any]] = parameters.items()
    elif isinstance(parameters, (list, tuple)):
        items = enumerate(parameters)
    else:
        return {}
    return {f"{sc.ATTR_DB_QUERY_PARAMETER}{key}": _short(value, key) for key, value in items}


def parameters_for_log(parameters: Any) -> Any:
    if isinstance(parameters, dict):
        return {str(k): _short(v, str(k)) for k, v in parameters.items()}
    if isinstance(parameters, (list, tuple)):
        return [parameters_for_log(p) if isinstance(p, (dict, list, tuple)) else _short(p)
                for p in parameters[:100]]  # fmt: skip
    return _short(parameters)
