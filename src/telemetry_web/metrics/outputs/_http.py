"""One HTTP POST for the outputs that speak HTTP: 2xx returns, anything else raises.

Statuses become :class:`ExportError`: 429 and 5xx are retried (with the ``Retry-After`` they
carry), other statuses (4xx, and redirects, which are not followed: a redirected POST would
lose its body) are not. Connection errors and timeouts propagate as they are, for
``describe_failure`` to name (``connection refused to …``).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..._redaction import scrub_text
from ...logging._shipping import retry_after as parse_retry_after
from ._push import ExportError

__all__ = ["post", "where"]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is raised as an HTTPError, and counted as rejected


_OPENER = urllib.request.build_opener(_NoRedirects())


def where(url: str) -> str:
    """``url`` as messages show it: no user, password or query string."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
    """POST ``body``; returns on a 2xx answer (its body read and discarded)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        status = exc.code
        retry_after = parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        try:
            detail = exc.read(300).decode("utf-8", "replace").strip().splitlines()
        except OSError:
            detail = []
        finally:
            exc.close()
        text = f"HTTP {status}" + (f" ({scrub_text(detail[0][:200])})" if detail else "")
        retry = status == 429 or status >= 500
        raise ExportError(text, retry=retry, retry_after=retry_after) from None
