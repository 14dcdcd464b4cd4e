"""Requests through ``TelemetryMiddleware`` in process, for the output, exporter and sink tests.

``ok_app`` is the smallest ASGI app (200 ``ok`` to every request); ``send_requests`` sends
``count`` GETs through the middleware around it and returns how long each took, which the
"a failing backend never slows requests" checks (``tests/_timing.py``) judge.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from telemetry_web import Telemetry, TelemetryMiddleware


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def send_requests(telemetry: Telemetry, count: int, path: str = "/orders") -> list[float]:
    """``count`` requests through TelemetryMiddleware; the duration of each."""
    app = TelemetryMiddleware(ok_app, telemetry=telemetry)
    durations: list[float] = []

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for _ in range(count):
                started = time.perf_counter()
                response = await client.get(path)
                durations.append(time.perf_counter() - started)
                assert response.status_code == 200

    asyncio.run(run())
    return durations
