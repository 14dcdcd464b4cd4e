"""Keeping secrets out of spans and logs: sensitive query parameter values and header names."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

from . import semconv

__all__ = ["QueryRedactor"]


class QueryRedactor:
    """Replaces the values of sensitive query parameters (``token``, ``password`` …) by REDACTED."""

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        self._names = semconv.SENSITIVE_QUERY_PARAMS | {n.lower() for n in extra_names}

    def __call__(self, query: str) -> str:
        if not query:
            return query
        lowered = query.lower()
        if not any(name in lowered for name in self._names):
            return query  # the common case costs one scan
        pairs = parse_qsl(query, keep_blank_values=True)
        return urlencode(
            [(k, semconv.REDACTED if k.lower() in self._names else v) for k, v in pairs]
        )
