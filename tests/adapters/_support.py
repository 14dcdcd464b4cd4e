"""Helpers shared by the ASGI adapter tests: metric parsing, raw ASGI calls, the test apps."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from telemetry_web import Telemetry
from telemetry_web.testing import InMemoryLogSink

from .._metrics import Scrape

SERVICE = "adapters-test"
ENVIRONMENT = "test"
BASE_LABELS = {"service": SERVICE, "environment": ENVIRONMENT}

STREAM_CHUNKS = (b"alpha-", b"bravo-", b"charlie-", b"delta")
STREAM_GAP = 0.05  # seconds slept before each chunk after the first


# --- log sink ------------------------------------------------------------------------------------


class ListSink(InMemoryLogSink):
    """The public in-memory sink, with the filters these tests need."""

    def server_events(self) -> list[dict[str, Any]]:
        """Every event except the test client's own (httpx logs each request it sends)."""
        return [e for e in self.events if not str(e.get("logger", "")).startswith("http")]

    def request_lines(self) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e.get("event") == "request" and e.get("logger") == "telemetry_web.request"
        ]


# --- metrics -------------------------------------------------------------------------------------


def labels(method: str, route: str, status: int | str) -> dict[str, str]:
    """The full label set of a default-naming HTTP request series."""
    return {**BASE_LABELS, "method": method, "route": route, "status": str(status)}


async def scrape(client: httpx.AsyncClient, path: str = "/metrics", **headers: str) -> Scrape:
    response = await client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    return Scrape.parse(response.text)


def scrape_telemetry(tel: Telemetry) -> Scrape:
    """The metrics as ``/metrics`` renders them, without a request."""
    assert tel.metrics_endpoint is not None
    status, _headers, body = tel.metrics_endpoint.render(None, None, None)
    assert status == 200
    return Scrape.parse(body.decode())


# --- calling ASGI apps ---------------------------------------------------------------------------


def client_for(app: Any, *, base_url: str = "http://testserver") -> httpx.AsyncClient:
    """An in-process client; an exception escaping the app becomes the 500 the client saw."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def count_requests(
    app: Any, requests: list[tuple[str, str]]
) -> dict[tuple[str, str, str], float]:
    """Send ``requests`` ((method, path), redirects not followed) to ``app``, then scrape it:
    ``http_requests_total`` by (method, route, status)."""
    async with client_for(app) as client:
        for method, path in requests:
            await client.request(method, path, follow_redirects=False)
        metrics = await scrape(client)
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in metrics.named("http_requests_total")
    }


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("latin-1")
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


async def call_asgi(
    app: Any,
    path: str,
    *,
    method: str = "GET",
    headers: Iterable[tuple[bytes, bytes]] = (),
    query_string: bytes = b"",
    body: bytes = b"",
    disconnect: bool = False,
) -> RawResponse:
    """One HTTP request as raw ASGI messages: header bytes reach the app exactly as given.

    With ``disconnect`` the client goes away right after sending the body (status 0 if the app
    never started a response).
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent_body = False
    started: dict[str, Any] = {}
    chunks: list[bytes] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        if not disconnect:
            await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    return RawResponse(started.get("status", 0), list(started.get("headers", [])), b"".join(chunks))


def gunzip(body: bytes) -> str:
    return gzip.decompress(body).decode()


# --- the apps under test -------------------------------------------------------------------------


class TeapotError(Exception):
    """Handled by a custom exception handler that answers 418."""


@dataclass
class LifespanFlags:
    started: bool = False
    stopped: bool = False


async def _user(request: Request) -> Response:
    if request.method == "POST":
        body = await request.body()
        return PlainTextResponse(b"echo:" + body)
    return JSONResponse({"id": request.path_params["user_id"], "name": "Ada"})


async def _boom(request: Request) -> Response:
    raise RuntimeError("kaboom")


async def _missing(request: Request) -> Response:
    raise HTTPException(status_code=404, detail="no such thing")


async def _teapot(request: Request) -> Response:
    raise TeapotError("short and stout")


async def _teapot_handler(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("I'm a teapot", status_code=418)


async def _stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for i, chunk in enumerate(STREAM_CHUNKS):
            if i:
                await asyncio.sleep(STREAM_GAP)
            yield chunk

    return StreamingResponse(chunks(), media_type="text/plain")


async def _v1_user(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["id"]})


async def _echo_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"echo:{text}")
    await websocket.close()


def build_starlette(
    telemetry: Telemetry | None = None,
    *,
    flags: LifespanFlags | None = None,
    app_logger_telemetry: Telemetry | None = None,
) -> Starlette:
    """The Starlette app with every kind of route the tests need (no middleware added)."""
    flags = flags if flags is not None else LifespanFlags()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        flags.started = True
        yield
        flags.stopped = True

    async def _logs(request: Request) -> Response:
        assert app_logger_telemetry is not None
        app_logger_telemetry.get_logger("api").info("structlog inside", marker="structlog")
        logging.getLogger("app").warning("stdlib inside")
        return PlainTextResponse("logged")

    v1 = Starlette(routes=[Route("/users/{id:int}", _v1_user)])
    routes = [
        Route("/api/users/{user_id}", _user, methods=["GET", "POST"]),
        Route("/boom", _boom),
        Route("/missing", _missing),
        Route("/teapot", _teapot),
        Route("/stream", _stream),
        Route("/logs", _logs),
        Mount("/v1", app=v1),
        WebSocketRoute("/ws", _echo_ws),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={TeapotError: _teapot_handler},
    )


def build_fastapi() -> FastAPI:
    """A FastAPI app whose routes come from an APIRouter (with a nested one) under ``/v2``."""
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @router.get("/fail")
    async def fail() -> dict[str, str]:
        raise RuntimeError("fastapi kaboom")

    inner = APIRouter()

    @inner.get("/things/{thing_id}")
    async def read_thing(thing_id: str) -> dict[str, str]:
        return {"thing_id": thing_id}

    router.include_router(inner, prefix="/inner")
    app = FastAPI()
    app.include_router(router, prefix="/v2")
    return app
