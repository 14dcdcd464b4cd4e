"""What the lifecycle reads from a Django request's ``META``, decoded defensively.

WSGI servers hand header and query bytes to Django as latin-1 strings, and Django's ASGI handler
decodes them the same way: a value is re-encoded as latin-1 and decoded as UTF-8, strictly. A
header that fails counts as absent (a query string that fails, as empty), like the ASGI adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpResponse

from .._http.environ import ENDPOINT_KEYS, pick_headers, query
from .._http.environ import protocol as environ_protocol
from ..health import QUERY_KEY

__all__ = ["builtin_response", "protocol"]


def protocol(request: Any, meta: Mapping[str, Any]) -> str | None:
    """``SERVER_PROTOCOL`` ``HTTP/1.1`` -> ``1.1``; an ASGI request has it in its scope."""
    version = environ_protocol(meta)
    if version is not None:
        return version
    scope = getattr(request, "scope", None)
    version = scope.get("http_version") if isinstance(scope, dict) else None
    return version if isinstance(version, str) and version else None


def builtin_response(endpoint: Any, meta: Mapping[str, Any], method: str) -> HttpResponse:
    """The response of a built-in endpoint (``/metrics``, ``/health``, ``/ready``)."""
    request = pick_headers(meta, ENDPOINT_KEYS)
    raw_query = query(meta)
    if raw_query:
        request[QUERY_KEY] = raw_query
    status, headers, body = endpoint(request)
    response = HttpResponse(b"" if method == "HEAD" else body, status=status)
    for name, value in headers:
        response[name] = value
    response["Content-Length"] = str(len(body))
    return response
