"""Health checks through the adapters: the ASGI middleware (runner started and stopped by the
lifespan) and the Flask extension (a WSGI app: runner thread from app start)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from telemetry_web import Telemetry, TelemetryMiddleware

from .._waiting import async_wait_until, wait_until
from .conftest import MakeCaptured

starlette = pytest.importorskip("starlette")
flask = pytest.importorskip("flask")

from flask import Flask  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

import telemetry_web.flask  # noqa: E402


async def _home(request: Any) -> PlainTextResponse:
    return PlainTextResponse("home")


def asgi_app(telemetry: Telemetry, events: list[str]) -> TelemetryMiddleware:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("app started")
        yield
        events.append("app stopping")

    app = Starlette(routes=[Route("/", _home)], lifespan=lifespan)
    return TelemetryMiddleware(app, telemetry=telemetry)


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[None]:
    """Drive the ASGI lifespan like a server: startup before the body, shutdown after it."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), 10))["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await asyncio.wait_for(outbox.get(), 10))["type"] == "lifespan.shutdown.complete"
        await asyncio.wait_for(task, 10)


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


# --- ASGI ----------------------------------------------------------------------------------------


async def test_asgi_lifespan_starts_and_stops_the_runner(make_captured: MakeCaptured) -> None:
    """The checks start on this loop once the app has started, and stop before it shuts down."""
    captured = make_captured()
    telemetry = captured.telemetry
    loops: list[asyncio.AbstractEventLoop] = []
    events: list[str] = []

    async def db() -> None:
        loops.append(asyncio.get_running_loop())
        events.append("check")

    telemetry.add_health_check("db", db, interval=0.01)
    app = asgi_app(telemetry, events)
    async with running(app), client(app) as http:
        assert events[0] == "app started"  # checks wait for the app's own startup
        await async_wait_until(lambda: telemetry.health.ready)
        response = await http.get("/ready")
        assert response.status_code == 200
        assert response.json()["checks"]["db"]["status"] == "healthy"
        assert set(loops) == {asyncio.get_running_loop()}
    assert events[-1] == "app stopping"
    assert "check" not in events[events.index("app stopping") :]  # stopped before the app
    assert not telemetry.health.needs_start


async def test_asgi_ready_answers_while_a_check_hangs(make_captured: MakeCaptured) -> None:
    """/ready answers from the latest state while an async check is known to be blocked."""
    telemetry = make_captured().telemetry
    entered, release = asyncio.Event(), asyncio.Event()

    async def hangs() -> None:
        entered.set()
        await release.wait()

    telemetry.add_health_check("slow", hangs, timeout=30)
    app = asgi_app(telemetry, [])
    async with running(app), client(app) as http:
        await asyncio.wait_for(entered.wait(), 10)
        response = await http.get("/ready")  # the check is blocked right now
        assert not release.is_set()
        assert response.status_code == 503
        assert response.json() == {
            "status": "not_ready",
            "service": "shop",
            "checks": {
                "slow": {
                    "status": "pending",
                    "critical": True,
                    "last_error": None,
                    "last_duration_ms": None,
                    "consecutive_successes": 0,
                    "consecutive_failures": 0,
                    "last_change": None,
                }
            },
        }
        assert (await http.get("/health")).status_code == 200  # liveness ignores dependencies
        release.set()
        await async_wait_until(lambda: telemetry.health.ready)
        assert (await http.get("/ready")).status_code == 200


async def test_asgi_probes_stay_out_of_telemetry_but_failures_are_logged(
    make_captured: MakeCaptured,
) -> None:
    """Probes make no span, request metric or request line; a failing answer is logged once."""
    captured = make_captured()
    telemetry = captured.telemetry
    telemetry.add_health_check("db", lambda: False, unhealthy_threshold=1)
    app = asgi_app(telemetry, [])
    async with running(app), client(app) as http:
        await async_wait_until(lambda: telemetry.health.snapshot("db").runs >= 1)
        for _ in range(5):
            assert (await http.get("/ready")).status_code == 503
            assert (await http.get("/health")).status_code == 200
        assert (await http.get("/")).status_code == 200
    assert [s.name for s in captured.spans()] == ["GET /"]
    assert [e["path"] for e in captured.logs() if e.get("event") == "request"] == ["/"]
    assert captured.sample("http_requests_total", method="GET", route="/", status="200") == 1
    assert "/ready" not in captured.metrics_text()
    failed = [e for e in captured.logs() if e.get("event") == "readiness probe failed"]
    assert [(e["status"], e["checks"]) for e in failed] == [(503, ["db"])]


async def test_asgi_verbose_query_reaches_the_endpoint(make_captured: MakeCaptured) -> None:
    """/ready?verbose through the middleware: the query string is handed to the endpoint."""
    telemetry = make_captured().telemetry
    telemetry.add_health_check("db", lambda: None)
    app = asgi_app(telemetry, [])
    async with running(app), client(app) as http:
        await async_wait_until(lambda: telemetry.health.ready)
        body = (await http.get("/ready?verbose")).json()
    assert body["checks"]["db"]["kind"] == "function"


async def test_asgi_without_lifespan_starts_on_the_first_request(
    make_captured: MakeCaptured,
) -> None:
    """A server that runs no lifespan: the first request (a probe too) starts the runner."""
    telemetry = make_captured().telemetry
    telemetry.add_health_check("db", lambda: None)
    app = asgi_app(telemetry, [])
    async with client(app) as http:
        assert (await http.get("/ready")).status_code == 503  # answered before the first round
        await async_wait_until(lambda: telemetry.health.ready)
        assert (await http.get("/ready")).status_code == 200
    await telemetry.health.stop_async()


# --- WSGI (Flask) --------------------------------------------------------------------------------


@pytest.fixture
def flask_telemetry(clock: Any) -> Iterator[Any]:
    """``make(app, config)``: the engine of a Flask extension on the manual clock, shut down
    afterwards."""
    made: list[Any] = []

    def make(app: Flask, config: dict[str, Any]) -> Any:
        extension = telemetry_web.flask.FlaskTelemetry(
            app,
            config={
                "service": "shop",
                "logging": {"sinks": {"console": False}},
                # No local store: it would be the working directory's (the repository's).
                "store": {"enabled": False},
                **config,
            },
            use_env=False,
        ).telemetry
        extension.health.use_clock(clock)
        made.append(extension)
        return extension

    yield make
    for extension in made:
        extension.shutdown()


def test_flask_app_start_runs_the_checks_in_a_thread(
    flask_telemetry: Any, listening_port: int
) -> None:
    """init_app starts the runner thread; /ready turns 200 once the first round is in."""
    app = Flask(__name__)
    extension = flask_telemetry(
        app,
        {"health": {"checks": [{"name": "port", "check": {"tcp": {"host": "127.0.0.1",
                                                                     "port": listening_port}}}]}},
    )  # fmt: skip
    assert "telemetry-health" in {t.name for t in threading.enumerate()}
    wait_until(lambda: extension.health.ready)
    response = app.test_client().get("/ready")
    assert response.status_code == 200
    assert json.loads(response.data)["checks"]["port"]["status"] == "healthy"
    extension.shutdown()
    wait_until(lambda: "telemetry-health" not in {t.name for t in threading.enumerate()})


def test_flask_ready_answers_while_a_check_is_stuck(flask_telemetry: Any) -> None:
    """A blocked check never holds up the probe, which answers from the latest state."""
    app = Flask(__name__)
    extension = flask_telemetry(app, {})
    entered, release = threading.Event(), threading.Event()

    def stuck() -> None:
        entered.set()
        release.wait(30)

    extension.add_health_check("slow", stuck, timeout=30)
    try:
        assert entered.wait(10)
        response = app.test_client().get("/ready?verbose=1")
        assert not release.is_set()
        assert response.status_code == 503
        body = json.loads(response.data)
        assert body["checks"]["slow"]["status"] == "pending"
        assert body["checks"]["slow"]["kind"] == "function"  # the query reached the endpoint
        assert app.test_client().get("/health").status_code == 200
    finally:
        release.set()
    wait_until(lambda: extension.health.ready)
    assert app.test_client().get("/ready").status_code == 200
