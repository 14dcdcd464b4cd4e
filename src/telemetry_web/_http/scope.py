"""Reading an ASGI scope: the headers the lifecycle needs, the query, the client; and capturing
response headers.

Header bytes that are not valid UTF-8 count as absent, never as an error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

__all__ = [
    "ENDPOINT_HEADERS",
    "LISTS",
    "ASGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "capture_response",
    "client",
    "pick_headers",
    "query",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log: Final = logging.getLogger("telemetry_web")

# The request headers the built-in endpoints read.
ENDPOINT_HEADERS = {b"accept": "accept", b"accept-encoding": "accept-encoding",
                    b"authorization": "authorization"}  # fmt: skip
# Trace context that must be stated once: two different values make it absent (a new root trace).
_SINGLE_VALUED: Final = frozenset({"traceparent", "b3", "x-b3-traceid", "x-b3-spanid",
                                   "x-b3-sampled", "x-b3-parentspanid", "x-b3-flags"})  # fmt: skip
# Lists that may be split over several header lines (W3C): joined, as one header.
LISTS: Final = frozenset({"tracestate", "baggage"})


def query(scope: Scope) -> str:
    raw = scope.get("query_string")
    if not raw:
        return ""
    try:
        return raw.decode("utf-8")  # type: ignore[no-any-return]
    except UnicodeDecodeError:
        return ""


def client(scope: Scope) -> str | None:
    address = scope.get("client")
    return address[0] if address else None


def pick_headers(
    scope: Scope, wanted: dict[bytes, str], joined: frozenset[str] = LISTS
) -> dict[str, str]:
    """The wanted headers, decoded; one that is not valid UTF-8 counts as absent."""
    found: dict[str, str] = {}
    conflicting: set[str] | None = None
    for raw_name, raw_value in scope.get("headers", ()):
        name = wanted.get(raw_name)
        if name is not None:
            try:
                value = raw_value.decode("utf-8")
            except UnicodeDecodeError:
                continue
            previous = found.get(name)
            if previous is None or previous == value:
                found[name] = value
            elif name in joined:
                found[name] = f"{previous},{value}"
            elif name in _SINGLE_VALUED:
                conflicting = (conflicting or set()) | {name}
            else:
                found[name] = value  # the last one wins, as in most frameworks
    if conflicting:
        for name in conflicting:
            del found[name]
    return found


def capture_response(active: Any, headers: Any, wanted: dict[bytes, str]) -> None:
    """Hand the wanted response headers (repeated ones joined by commas) to the request."""
    found: dict[str, str] = {}
    try:
        for raw_name, raw_value in headers:
            name = wanted.get(raw_name) or wanted.get(raw_name.lower())
            if name is not None:
                try:
                    value = raw_value.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                found[name] = f"{found[name]},{value}" if name in found else value
        if found:
            active.capture_response_headers(found)
    except Exception:
        _log.exception("telemetry-web could not capture response headers")
