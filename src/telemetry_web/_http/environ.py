"""Reading a CGI-style request mapping: a WSGI ``environ`` or Django's ``request.META``.

Header values arrive as latin-1 text (PEP 3333); a value that is not the UTF-8 it should be
counts as absent, never as an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "decode",
    "header_keys",
    "pick_headers",
    "pick_response_headers",
    "protocol",
    "query",
    "server",
]


def header_keys(names: Iterable[str]) -> dict[str, str]:
    """Environ key -> lower-case header name (``user-agent`` is ``HTTP_USER_AGENT``)."""
    keys: dict[str, str] = {}
    for name in names:
        key = name.upper().replace("-", "_")
        keys[key if key in ("CONTENT_LENGTH", "CONTENT_TYPE") else "HTTP_" + key] = name
    return keys


# The request headers the built-in endpoints read.
ENDPOINT_KEYS = header_keys(("accept", "accept-encoding", "authorization"))


def decode(value: Any) -> str | None:
    """The UTF-8 text a latin-1 decoded header value was, or None."""
    if not isinstance(value, str):
        return None
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def pick_headers(environ: Mapping[str, Any], keys: Mapping[str, str]) -> dict[str, str]:
    """The wanted headers present in ``environ``, decoded; undecodable ones are left out."""
    found: dict[str, str] = {}
    if type(environ) is dict and type(keys) is dict:
        # A lookup per wanted header (about a dozen), in C: cheaper than intersecting the key
        # sets, which builds a set per request.
        for key, name in keys.items():
            raw = environ.get(key)
            if raw is not None:
                value = decode(raw)
                if value is not None:
                    found[name] = value
        return found
    for key in keys.keys() & environ.keys():
        value = decode(environ[key])
        if value is not None:
            found[keys[key]] = value
    return found


def pick_response_headers(
    headers: Iterable[tuple[str, str]], names: frozenset[str], *, latin1: bool = True
) -> dict[str, str]:
    """The response headers among ``names`` (lower-case), repeated ones joined by commas.

    ``latin1``: values are latin-1 decoded bytes (PEP 3333), recovered as UTF-8; Django's are
    text already.
    """
    found: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        if name in names:
            value = decode(raw_value) if latin1 else raw_value
            if isinstance(value, str):
                found[name] = f"{found[name]},{value}" if name in found else value
    return found


def query(environ: Mapping[str, Any]) -> str:
    raw = environ.get("QUERY_STRING")
    return (decode(raw) or "") if raw else ""


def server(environ: Mapping[str, Any]) -> tuple[str, int | None] | None:
    name = environ.get("SERVER_NAME")
    if not isinstance(name, str) or not name:
        return None
    port = str(environ.get("SERVER_PORT") or "")
    return name, int(port) if port.isdigit() and len(port) < 6 else None


def protocol(environ: Mapping[str, Any]) -> str | None:
    """``SERVER_PROTOCOL`` ``HTTP/1.1`` -> ``1.1`` (``HTTP/2.0`` -> ``2``)."""
    raw = environ.get("SERVER_PROTOCOL")
    if isinstance(raw, str) and raw.startswith("HTTP/"):
        version = raw[5:]
        return "2" if version == "2.0" else version
    return None
