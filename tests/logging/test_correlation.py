"""Correlation ids inside requests of every adapter: the request id, trace and span ids, the
route and fields bound for the whole request reach every line, from the endpoint, its asyncio
tasks and the thread pools that run sync code, and never leak into the next request."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import structlog

import tests.adapters.django.conftest  # noqa: F401  (configures Django settings, once)
from telemetry_web import TelemetryMiddleware
from telemetry_web.logging import bind_context, carry_context
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def captured() -> Iterator[CapturedTelemetry]:
    """A Telemetry recording into memory, closed after the test."""
    telemetry = capture_telemetry(service="correlation")
    yield telemetry
    telemetry.close()


def headers(request_id: str) -> dict[str, str]:
    return {"X-Request-ID": request_id, "traceparent": TRACEPARENT}


def lines_of(captured: CapturedTelemetry, request_id: str) -> dict[str, dict[str, Any]]:
    """The lines carrying ``request_id``, by event name (the request line is ``request``)."""
    return {e["event"]: e for e in captured.logs() if e.get("request_id") == request_id}


def assert_correlated(lines: dict[str, dict[str, Any]], expected: set[str], route: str) -> None:
    """Every expected line is there with the request line's trace and span ids, its route and
    the bound user; the request line carries the user too."""
    assert set(lines) == expected | {"request"}, set(lines)
    request = lines["request"]
    assert request["trace_id"] == TRACE_ID
    assert request["user"] == "ada"
    for name in expected:
        line = lines[name]
        assert (line["trace_id"], line["span_id"]) == (request["trace_id"], request["span_id"]), (
            name
        )
        assert line["route"] == route, name
        assert line["user"] == "ada", name


# --- ASGI: Starlette and FastAPI -----------------------------------------------------------------


def starlette_app(captured: CapturedTelemetry) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    log = captured.telemetry.get_logger("endpoints")
    loop_thread: dict[str, int] = {}

    async def async_endpoint(request: Request) -> PlainTextResponse:
        loop_thread["id"] = threading.get_ident()
        captured.telemetry.bind_context(user="ada")
        structlog.contextvars.bind_contextvars(tenant="acme")  # structlog's own, context-local
        log.info("async endpoint")

        async def task() -> None:
            log.info("asyncio task")

        await asyncio.create_task(task())
        await asyncio.to_thread(log.info, "to_thread")
        await asyncio.get_running_loop().run_in_executor(None, carry_context(log.info), "executor")
        return PlainTextResponse("ok")

    def sync_endpoint(request: Request) -> PlainTextResponse:  # Starlette runs it in its pool
        assert threading.get_ident() != loop_thread["id"]
        bind_context(user="ada")  # bound in a pool thread: the request line still gets it
        log.info("sync endpoint", thread="pool")
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/async/{order_id}", async_endpoint),
            Route("/sync/{order_id}", sync_endpoint),
        ]
    )


async def test_starlette_async_endpoint_task_and_threads(captured: CapturedTelemetry) -> None:
    """Lines from an async endpoint, an asyncio task, asyncio.to_thread and a carried executor
    call all carry the request's ids, route and bound fields."""
    app = TelemetryMiddleware(starlette_app(captured), telemetry=captured.telemetry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        # One task per request, as ASGI servers run them.
        for path, request_id in (("/async/7", "req-async"), ("/sync/7", "req-sync")):
            response = await asyncio.create_task(client.get(path, headers=headers(request_id)))
            assert response.status_code == 200
    lines = lines_of(captured, "req-async")
    assert_correlated(
        lines, {"async endpoint", "asyncio task", "to_thread", "executor"}, "/async/{order_id}"
    )
    assert lines["asyncio task"]["tenant"] == "acme"  # structlog contextvars reach tasks too
    sync_lines = lines_of(captured, "req-sync")
    assert_correlated(sync_lines, {"sync endpoint"}, "/sync/{order_id}")
    assert "tenant" not in sync_lines["sync endpoint"]  # bound in another request's context


async def test_fastapi_sync_dependency_binds_for_the_whole_request(
    captured: CapturedTelemetry,
) -> None:
    """A user bound by a sync FastAPI dependency (run in the thread pool) is on the async
    endpoint's line and on the request line."""
    from fastapi import Depends, FastAPI

    app = FastAPI()
    log = captured.telemetry.get_logger("fastapi")

    def current_user() -> str:
        bind_context(user="ada")
        log.info("dependency")
        return "ada"

    @app.get("/orders/{order_id}")
    async def order(order_id: int, user: str = Depends(current_user)) -> dict[str, Any]:
        log.info("endpoint", order_id=order_id)
        return {"user": user}

    @app.get("/plain/{order_id}")
    def plain(order_id: int) -> dict[str, int]:
        log.info("sync endpoint")
        bind_context(user="ada")
        return {"order_id": order_id}

    app.add_middleware(TelemetryMiddleware, telemetry=captured.telemetry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/orders/3", headers=headers("req-fastapi"))).status_code == 200
        assert (await client.get("/plain/3", headers=headers("req-plain"))).status_code == 200
    assert_correlated(
        lines_of(captured, "req-fastapi"), {"dependency", "endpoint"}, "/orders/{order_id}"
    )
    plain_lines = lines_of(captured, "req-plain")
    assert "user" not in plain_lines["sync endpoint"]  # logged before the bind
    assert plain_lines["request"]["user"] == "ada"


# --- Flask and plain WSGI ------------------------------------------------------------------------


def flask_captured(app: Any) -> CapturedTelemetry:
    """What capture_telemetry() builds, recorded through the Flask extension."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from telemetry_web.flask import FlaskTelemetry
    from telemetry_web.testing import InMemoryLogSink

    spans, logs = InMemorySpanExporter(), InMemoryLogSink()
    telemetry = FlaskTelemetry(
        app,
        config={"logging": {"sinks": {"console": False}}, "store": {"enabled": False}},
        service="correlation",
        span_exporters=[spans],
        log_sinks=[logs],
        use_env=False,
    ).telemetry
    return CapturedTelemetry(telemetry, spans, logs)


def test_flask_view_and_carried_thread() -> None:
    """A Flask view's lines, and those of work it hands to an executor with carry_context,
    carry the request's ids; the next request on the same thread starts clean."""
    from flask import Flask

    app = Flask("correlation")
    captured = flask_captured(app)
    log = captured.telemetry.get_logger("flask")
    pool = ThreadPoolExecutor(1)

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        if order_id == 1:
            bind_context(user="ada")
        log.info("view", order_id=order_id)
        pool.submit(carry_context(log.info), "worker thread").result()
        return "ok"

    client = app.test_client()
    try:
        client.get("/orders/1", headers=headers("req-flask-1"), buffered=True)
        client.get("/orders/2", headers=headers("req-flask-2"), buffered=True)
    finally:
        pool.shutdown()
    assert_correlated(
        lines_of(captured, "req-flask-1"), {"view", "worker thread"}, "/orders/<int:order_id>"
    )
    second = lines_of(captured, "req-flask-2")
    assert "user" not in second["view"]
    assert "user" not in second["request"]
    log.info("outside")
    (outside,) = [e for e in captured.logs() if e["event"] == "outside"]
    captured.close()
    assert "request_id" not in outside
    assert "route" not in outside


def test_plain_wsgi_middleware(captured: CapturedTelemetry) -> None:
    """Lines logged inside an app behind the WSGI middleware carry the request's ids."""
    from werkzeug.test import Client

    from telemetry_web.wsgi import TelemetryWSGIMiddleware

    log = captured.telemetry.get_logger("wsgi")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        bind_context(user="ada")
        log.info("wsgi app")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped = TelemetryWSGIMiddleware(
        app, telemetry=captured.telemetry, route_resolver=lambda environ: "/orders/{id}"
    )
    Client(wrapped).get("/orders/5", headers=headers("req-wsgi"), buffered=True)
    assert_correlated(lines_of(captured, "req-wsgi"), {"wsgi app"}, "/orders/{id}")


# --- Django --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["wsgi", "asgi"])
def test_django_sync_and_async_views(captured: CapturedTelemetry, mode: str) -> None:
    """Django views (sync and async, under the WSGI and the ASGI handler) and an async view's
    task log with the request's ids, route and bound user."""
    from django.test import AsyncClient, Client, override_settings

    from telemetry_web.django import set_telemetry

    previous = set_telemetry(captured.telemetry)
    try:
        with override_settings(ROOT_URLCONF="tests.logging.django_urls"):
            if mode == "wsgi":
                client = Client()
                client.get("/sync/1", headers=headers(f"dj-{mode}-sync"))
                client.get("/async/1", headers=headers(f"dj-{mode}-async"))
            else:

                async def go() -> None:
                    client = AsyncClient()
                    await client.get("/sync/1", headers=headers(f"dj-{mode}-sync"))
                    await client.get("/async/1", headers=headers(f"dj-{mode}-async"))

                asyncio.run(go())
    finally:
        set_telemetry(previous)
    assert_correlated(lines_of(captured, f"dj-{mode}-sync"), {"sync view"}, "/sync/<int:order_id>")
    assert_correlated(
        lines_of(captured, f"dj-{mode}-async"),
        {"async view", "async task"},
        "/async/<int:order_id>",
    )


def test_bind_context_outside_a_request_is_context_local(captured: CapturedTelemetry) -> None:
    """Outside a request, bind_context binds structlog contextvars: this context only."""
    import contextvars

    log = captured.telemetry.get_logger("jobs")

    def job() -> None:
        bind_context(job_id=9)
        log.info("in job")

    contextvars.copy_context().run(job)
    log.info("after job")
    lines = {e["event"]: e for e in captured.logs()}
    assert lines["in job"]["job_id"] == 9
    assert "job_id" not in lines["after job"]


def test_ids_are_written_as_w3c_hex_padded_and_out_of_range_ones_as_they_are() -> None:
    """Trace and span ids on log lines: lower-case hex, zero-padded to 32 and 16 digits; an id
    a custom generator made too large (an invalid span) is written whole, not dropped."""
    from telemetry_web.logging._context import hex_id

    assert hex_id(0xABC, 16) == "00000000000000000000000000000abc"
    assert hex_id(0xABC, 8) == "0000000000000abc"
    assert hex_id((1 << 128) - 1, 16) == "f" * 32
    assert hex_id(1 << 128, 16) == "1" + "0" * 32
    assert hex_id(1 << 64, 8) == "1" + "0" * 16


async def test_a_generated_request_id_is_32_hex_digits(captured: CapturedTelemetry) -> None:
    """Without an incoming id, each request gets a new one: 32 lower-case hex digits, the same
    in the response header and on the request log line."""
    app = TelemetryMiddleware(starlette_app(captured), telemetry=captured.telemetry)
    transport = httpx.ASGITransport(app=app)
    seen: list[str] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for _ in range(20):
            response = await client.get("/async/1")
            assert response.status_code == 200
            seen.append(response.headers["x-request-id"])
    assert len(set(seen)) == 20
    for request_id in seen:
        assert len(request_id) == 32
        assert request_id == f"{int(request_id, 16):032x}"
        assert lines_of(captured, request_id)["request"]["status"] == 200
