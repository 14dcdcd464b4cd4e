"""Answering the built-in endpoints (``/metrics``, ``/health``, ``/ready``) under ASGI and WSGI.

The endpoint itself (``Telemetry.endpoints``) takes the few request headers it reads, plus the
query string under ``QUERY_KEY``, and returns ``(status, headers, body)``; these functions turn
that into the server's protocol. Django's counterpart is ``telemetry_web/django/_request.py``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ..health import QUERY_KEY
from .environ import ENDPOINT_KEYS
from .environ import pick_headers as pick_environ_headers
from .environ import query as environ_query
from .scope import ENDPOINT_HEADERS, Scope, Send, pick_headers, query

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["answer_asgi", "answer_wsgi"]


async def answer_asgi(endpoint: Any, scope: Scope, send: Send) -> None:
    """Send the endpoint's response (no body for HEAD)."""
    headers = pick_headers(scope, ENDPOINT_HEADERS)
    raw_query = query(scope)
    if raw_query:
        headers[QUERY_KEY] = raw_query
    status, response_headers, body = endpoint(headers)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response_headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


def answer_wsgi(
    endpoint: Any, environ: WSGIEnvironment, start_response: StartResponse, method: str
) -> list[bytes]:
    """Start the endpoint's response and return its body (none for HEAD)."""
    headers = pick_environ_headers(environ, ENDPOINT_KEYS)
    raw_query = environ_query(environ)
    if raw_query:
        headers[QUERY_KEY] = raw_query
    status, response_headers, body = endpoint(headers)
    start_response(_status_line(status), [*response_headers, ("Content-Length", str(len(body)))])
    return [] if method == "HEAD" else [body]


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"
