"""Keeping secrets out of spans and logs: sensitive query parameter values and header names."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote_plus, urlencode

from . import semconv

__all__ = ["QueryRedactor"]


class QueryRedactor:
    """Replaces the values of sensitive query parameters by ``REDACTED``.

    A parameter is sensitive when its (decoded, lower-cased) name is one of the configured
    names or contains one of them as a word: ``token`` covers ``access_token`` and
    ``X-Amz-Security-Token``, ``key`` covers ``api_key``, ``secret`` covers ``client_secret``.
    """

    def __init__(self, extra_names: Iterable[str] = ()) -> None:
        self._names = semconv.SENSITIVE_QUERY_PARAMS | {n.lower() for n in extra_names}

    def __call__(self, query: str) -> str:
        if not query:
            return query
        lowered = unquote_plus(query).lower()
        if not any(name in lowered for name in self._names):
            return query  # the common case costs one scan
        pairs = parse_qsl(query, keep_blank_values=True)
        return urlencode([(k, semconv.REDACTED if self._sensitive(k) else v) for k, v in pairs])

    def _sensitive(self, name: str) -> bool:
        lowered = name.lower()
        if lowered in self._names:
            return True
        words = lowered.replace("-", "_").replace(".", "_").split("_")
        return any(word in self._names for word in words)
