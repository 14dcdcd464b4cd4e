"""Helpers for the tracing tests: a one-route ASGI app and raw ASGI calls with a chosen client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.trace import Status, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware

TRACE = "463ac35c9f6413ad48485a3953bb6124"
CALLER = "a2fb4a1d1a96d312"


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def traced_app(telemetry: Telemetry) -> Any:
    """``GET /items/{id}`` answering ``ok``, wrapped whole in the telemetry middleware."""
    app = Starlette(routes=[Route("/items/{id}", _ok)])
    return TelemetryMiddleware(app, telemetry=telemetry)


async def call(
    app: Any,
    path: str = "/items/1",
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    client: str = "127.0.0.1",
) -> int:
    """One HTTP request as raw ASGI messages (header bytes exactly as given); the status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": (client, 50000),
        "server": ("testserver", 80),
    }
    started: dict[str, Any] = {}
    done = asyncio.Event()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    return int(started.get("status", 0))


def drive(telemetry: Telemetry) -> None:
    """A request continuing the caller's trace, with a child span carrying an event and an
    error, then a failing child."""
    tracer = telemetry.get_tracer("orders.db")

    async def requests() -> None:
        app = traced_app(telemetry)
        assert (
            await call(app, headers=[(b"traceparent", f"00-{TRACE}-{CALLER}-01".encode())]) == 200
        )

    asyncio.run(requests())
    with tracer.start_as_current_span("load", attributes={"db.system": "postgresql"}) as span:
        span.add_event("cache miss", {"key": "order:7"})
        with tracer.start_as_current_span("query") as child:
            try:
                raise ValueError("no such order")
            except ValueError as exc:
                child.record_exception(exc)
                child.set_status(Status(StatusCode.ERROR, "no such order"))
