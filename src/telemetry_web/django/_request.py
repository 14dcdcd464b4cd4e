"""What the lifecycle reads from a Django request's ``META``, decoded defensively.

WSGI servers hand header and query bytes to Django as latin-1 strings, and Django's ASGI handler
decodes them the same way: a value is re-encoded as latin-1 and decoded as UTF-8, strictly. A
header that fails counts as absent (a query string that fails, as empty), like the ASGI adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpResponse

from ..health import QUERY_KEY

__all__ = ["ENDPOINT_KEYS", "builtin_response", "meta_keys", "pick", "protocol", "query", "server"]


def meta_keys(names: Iterable[str]) -> dict[str, str]:
    """``META`` key -> lower-case header name, for the header names given."""
    keys: dict[str, str] = {}
    for name in names:
        key = name.upper().replace("-", "_")
        keys[key if key in ("CONTENT_LENGTH", "CONTENT_TYPE") else "HTTP_" + key] = name
    return keys


# The request headers the built-in endpoints read.
ENDPOINT_KEYS = meta_keys(("accept", "accept-encoding", "authorization"))


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def pick(meta: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, str]:
    """The wanted headers present in ``meta``, decoded; undecodable ones are left out."""
    found: dict[str, str] = {}
    for key, name in keys.items():
        raw = meta.get(key)
        if raw is not None:
            value = _text(raw)
            if value is not None:
                found[name] = value
    return found


def query(meta: Mapping[str, Any]) -> str:
    raw = meta.get("QUERY_STRING")
    return (_text(raw) or "") if raw else ""


def server(meta: Mapping[str, Any]) -> tuple[str, int | None] | None:
    name = meta.get("SERVER_NAME")
    if not isinstance(name, str) or not name:
        return None
    port = str(meta.get("SERVER_PORT") or "")
    return name, int(port) if port.isdigit() and len(port) < 6 else None


def protocol(request: Any, meta: Mapping[str, Any]) -> str | None:
    """``SERVER_PROTOCOL`` ``HTTP/1.1`` -> ``1.1``; an ASGI request has it in its scope."""
    raw = meta.get("SERVER_PROTOCOL")
    if isinstance(raw, str) and raw:
        return raw[5:] if raw.startswith("HTTP/") else raw
    scope = getattr(request, "scope", None)
    version = scope.get("http_version") if isinstance(scope, dict) else None
    return version if isinstance(version, str) and version else None


def builtin_response(endpoint: Any, meta: Mapping[str, Any], method: str) -> HttpResponse:
    """The response of a built-in endpoint (``/metrics``, ``/health``, ``/ready``)."""
    request = pick(meta, ENDPOINT_KEYS)
    raw_query = query(meta)
    if raw_query:
        request[QUERY_KEY] = raw_query
    status, headers, body = endpoint(request)
    response = HttpResponse(b"" if method == "HEAD" else body, status=status)
    for name, value in headers:
        response[name] = value
    response["Content-Length"] = str(len(body))
    return response
