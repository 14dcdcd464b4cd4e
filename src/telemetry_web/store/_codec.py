"""How the store keeps a row small: JSON packed with a preset deflate dictionary, ids as bytes.

``pack`` turns a JSON text into ``b"\\x01" + raw deflate`` primed with :data:`_DICTIONARY` (the
attribute keys and values every request repeats), so a request span's attributes take about
95 bytes instead of 390. The dictionary is part of the file format: format byte 1 means this
dictionary forever; a new one gets a new format byte. Rows written before packing existed hold
plain JSON text, which :func:`unpack` reads too.

Hex ids (32-character trace ids, 16-character span ids, generated request ids) are stored as
their bytes; any other value is stored as given.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

__all__ = ["id_in", "id_out", "pack", "unpack"]

_FORMAT_DEFLATE_V1 = 1
_DICTIONARY = (
    b'{"exception.type": "", "exception.message": "", "exception.stacktrace": "Traceback (most '
    b'recent call last):\\n  File \\"", line , in \\n", "exception.escaped": false, "error.type": '
    b'"", "db.system.name": "postgresql", "db.query.text": "SELECT ", "db.operation.name": '
    b'"SELECT", "db.namespace": "", "server.port": 5432, "http.request.header.x-request-id": [""], '
    b'"url.full": "https://", "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) '
    b'python-httpx/0.2", "server.address": "localhost", "server.port": 8000, '
    b'"network.protocol.version": "1.1", "client.address": "127.0.0.1", "url.scheme": "http", '
    b'"url.query": "", "http.response.status_code": 200, "http.route": "/", '
    b'"http.request.method": "GET", "url.path": "/"}'
    b'{"environment": "production", "version": "", "method": "POST", "route": "/", "path": "/", '
    b'"status": 200, "duration_ms": 0., "client": "127.0.0.1", "user_agent": "", "query": "", '
    b'"environment": "development", "method": "GET"}'
)


# The writer's compressor, primed with the dictionary once and copied per row (a copy costs less
# than priming a new one, and a 4 KiB window copies faster than 32 KiB). The window holds the
# whole dictionary and a row of up to about 3 KiB after it (with 1 KiB, rows lost the dictionary's
# first keys: 2.6% more bytes per request): the streams it writes are the same format, read with
# the 32 KiB window below (a decoder's window may be larger).
_WINDOW_BITS = 12
assert len(_DICTIONARY) <= 1 << _WINDOW_BITS
_PRIMED = zlib.compressobj(6, zlib.DEFLATED, -_WINDOW_BITS, 1, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY)
_HEAD = bytes((_FORMAT_DEFLATE_V1,))


def pack(text: str | None) -> bytes | None:
    """The stored form of a JSON text; None for an empty object or list (and for None)."""
    if text is None or text in ("{}", "[]"):
        return None
    c = _PRIMED.copy()
    return _HEAD + c.compress(text.encode()) + c.flush()


def unpack(value: bytes | str | None, empty: Any) -> Any:
    """The JSON value of a stored column: packed, plain text (older rows) or NULL (``empty``)."""
    if value is None:
        return empty
    if isinstance(value, str):
        return json.loads(value)
    if value[0] != _FORMAT_DEFLATE_V1:
        raise ValueError(f"unknown packed format {value[0]}")
    d = zlib.decompressobj(-15, _DICTIONARY)
    return json.loads(d.decompress(value[1:]) + d.flush())


_HEX = frozenset("0123456789abcdef")


def id_in(value: Any) -> Any:
    """A lower-case hex id of 16 or 32 characters as its bytes; anything else unchanged."""
    if isinstance(value, str) and len(value) in (16, 32) and _HEX.issuperset(value):
        return bytes.fromhex(value)
    return value


def id_out(value: Any) -> Any:
    """The text of a stored id (see :func:`id_in`)."""
    return value.hex() if isinstance(value, bytes) else value
