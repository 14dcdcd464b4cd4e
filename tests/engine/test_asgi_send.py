"""What the ASGI exchange's ``send`` does to the app's response start: X-Request-ID added on a
new message and list (an app may send the same ones again), never twice, in any case."""

from __future__ import annotations

import asyncio
from typing import Any

from telemetry_web import TelemetryMiddleware
from telemetry_web._http.exchange import _has_header
from telemetry_web.testing import capture_telemetry

# One start message and header list shared by every response, as a module-level constant would be.
SHARED_HEADERS = [(b"content-type", b"text/plain")]
SHARED_START = {"type": "http.response.start", "status": 200, "headers": SHARED_HEADERS}


async def _shared(scope: Any, receive: Any, send: Any) -> None:
    await send(SHARED_START)
    await send({"type": "http.response.body", "body": b"ok"})


async def _own_id(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"X-Request-ID", b"mine"), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


async def _call(app: Any, request_id: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
        "headers": [(b"x-request-id", request_id.encode())], "scheme": "http",
        "http_version": "1.1", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_request_id_on_a_new_message_each_time() -> None:
    captured = capture_telemetry()
    try:
        app = TelemetryMiddleware(_shared, telemetry=captured.telemetry)
        for request_id in ("first-request-0001", "second-request-0002"):
            start = asyncio.run(_call(app, request_id))[0]
            assert start is not SHARED_START
            assert start["headers"] == [*SHARED_HEADERS, (b"x-request-id", request_id.encode())]
        assert SHARED_HEADERS == [(b"content-type", b"text/plain")]
        assert SHARED_START["headers"] is SHARED_HEADERS
    finally:
        captured.close()


def test_an_id_the_app_set_is_kept() -> None:
    captured = capture_telemetry()
    try:
        app = TelemetryMiddleware(_own_id, telemetry=captured.telemetry)
        start = asyncio.run(_call(app, "incoming-request-01"))[0]
        assert [v for k, v in start["headers"] if k.lower() == b"x-request-id"] == [b"mine"]
    finally:
        captured.close()


def test_has_header() -> None:
    name = b"x-request-id"
    assert _has_header([(b"X-Request-Id", b"1")], name)
    assert _has_header(((b"a", b""), (b"x-request-id", b"")), name)
    assert not _has_header([], name)
    assert not _has_header([(b"x-request-ids", b"1"), (b"x-request-i", b"1")], name)
