"""Inside real requests: database and cache spans are children of the request span of the
ASGI middleware and of the Flask extension, and /metrics serves their samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from telemetry_web import TelemetryMiddleware
from telemetry_web.instrumentors import RedisInstrumentor, SQLAlchemyInstrumentor
from telemetry_web.testing import CapturedTelemetry, InMemoryLogSink

from ._support import ENVIRONMENT, SERVICE, is_child_of, parse_metric

pytest.importorskip("sqlalchemy")
starlette = pytest.importorskip("starlette")

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

Key = Callable[[str], str]


def _instrument(telemetry: Any, cleanup: list[Any]) -> None:
    for instrumentor in (
        SQLAlchemyInstrumentor(telemetry=telemetry, slow_query_threshold=0.05),
        RedisInstrumentor(telemetry=telemetry),
    ):
        instrumentor.instrument()
        cleanup.append(instrumentor)


def _check_children(spans: list[Any], request_name: str) -> None:
    """The request span is the only SERVER span, and every database span is its child."""
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == request_name
    db = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert db, [s.name for s in spans]
    for span in db:
        assert is_child_of(span, request), span.name
    return None


async def test_asgi_request_parents_async_engine_and_asyncio_redis_spans(
    captured: CapturedTelemetry,
    cleanup: list[Any],
    async_postgres_url: str,
    redis_url: str,
    key: Key,
) -> None:
    """An async endpoint querying PostgreSQL through an AsyncEngine and Redis through
    redis.asyncio: every span is a child of the request span, the slow query's log line carries
    the request's trace id, and /metrics shows the samples."""
    tel = captured.telemetry
    _instrument(tel, cleanup)
    engine = create_async_engine(async_postgres_url)
    cache = redis.asyncio.Redis.from_url(redis_url)

    async def order(request: Request) -> JSONResponse:
        async with engine.connect() as conn:
            total = (await conn.execute(text("SELECT :n + 1"), {"n": 41})).scalar()
            await conn.execute(text("SELECT pg_sleep(0.06)"))
        await cache.set(key(request.path_params["order_id"]), str(total))
        async with cache.pipeline() as pipe:
            pipe.get(key(request.path_params["order_id"]))
            pipe.delete(key("none"))
            cached, _ = await pipe.execute()
        return JSONResponse({"total": total, "cached": cached.decode()})

    app = TelemetryMiddleware(Starlette(routes=[Route("/orders/{order_id}", order)]), telemetry=tel)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/orders/7")
            assert response.json() == {"total": 42, "cached": "42"}
            metrics = (await client.get("/metrics")).text
    finally:
        await cache.delete(key("7"))
        await cache.aclose()
        await engine.dispose()
    spans = captured.spans()
    _check_children(spans, "GET /orders/{order_id}")
    assert [s.name for s in spans if s.kind is SpanKind.CLIENT] == [
        "SELECT test", "SELECT test", "SET", "MULTI",
    ]  # fmt: skip
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    slow_lines = [e for e in captured.logs() if e.get("event") == "slow query"]
    (slow,) = [e for e in slow_lines if e["statement"] == "SELECT pg_sleep(?)"]
    assert slow["trace_id"] == format(request.context.trace_id, "032x")
    assert slow["statement"] == "SELECT pg_sleep(?)"
    duration = "db_client_operation_duration_seconds_count"
    assert parse_metric(metrics, duration, db_system="postgresql", operation="SELECT",
                        status="ok") == 2  # fmt: skip
    assert parse_metric(metrics, duration, db_system="redis", operation="SET", status="ok") == 1
    assert parse_metric(metrics, duration, db_system="redis", operation="MULTI", status="ok") == 1
    assert parse_metric(metrics, "db_client_connections", db_system="postgresql",
                        pool="postgresql://127.0.0.1:5432/test", state="idle") == 1  # fmt: skip


async def test_asgi_sync_endpoint_in_the_threadpool(
    captured: CapturedTelemetry, cleanup: list[Any], postgres_url: str, redis_url: str, key: Key
) -> None:
    """A sync endpoint that Starlette runs in its threadpool still parents its spans."""
    tel = captured.telemetry
    _instrument(tel, cleanup)
    engine = create_engine(postgres_url)
    cache = redis.Redis.from_url(redis_url)

    def report(request: Request) -> JSONResponse:
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM pg_catalog.pg_tables")).scalar()
        cache.incr(key("hits"))
        assert count is not None
        return JSONResponse({"tables": count > 0})

    app = TelemetryMiddleware(Starlette(routes=[Route("/report", report)]), telemetry=tel)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client:
            assert (await client.get("/report")).json() == {"tables": True}
    finally:
        cache.delete(key("hits"))
        cache.close()
        engine.dispose()
    _check_children(captured.spans(), "GET /report")


def test_flask_request_parents_sync_engine_and_redis_spans(
    cleanup: list[Any], postgres_url: str, redis_url: str, key: Key
) -> None:
    """A Flask view querying PostgreSQL and Redis through the Flask extension: every span is a
    child of the request span, and the app's /metrics shows the samples."""
    pytest.importorskip("flask")
    import flask

    from telemetry_web.flask import FlaskTelemetry

    app = flask.Flask("instrumentor_tests")
    spans, logs = InMemorySpanExporter(), InMemoryLogSink()
    tel = FlaskTelemetry(
        app,
        config={
            "service": SERVICE,
            "environment": ENVIRONMENT,
            "logging": {"sinks": {"console": False}},
            # No local store: it would be the working directory's (the repository's).
            "store": {"enabled": False},
        },
        span_exporters=[spans],
        log_sinks=[logs],
        use_env=False,
    ).telemetry
    captured = CapturedTelemetry(tel, spans, logs)
    _instrument(tel, cleanup)
    engine = create_engine(postgres_url)
    cache = redis.Redis.from_url(redis_url)

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, Any]:
        with engine.connect() as conn:
            name = conn.execute(text("SELECT 'user ' || :id"), {"id": str(user_id)}).scalar()
        assert isinstance(name, str)
        cache.set(key(str(user_id)), name)
        with cache.pipeline(transaction=False) as pipe:
            pipe.get(key(str(user_id)))
            pipe.ttl(key(str(user_id)))
            cached, ttl = pipe.execute()
        return {"name": name, "cached": cached.decode(), "ttl": ttl}

    try:
        client = app.test_client()
        response = client.get("/users/7", buffered=True)  # closed: the request has ended
        assert response.json == {"name": "user 7", "cached": "user 7", "ttl": -1}
        metrics = client.get("/metrics", buffered=True).text
    finally:
        cache.delete(key("7"))
        cache.close()
        engine.dispose()
        captured.close()
    finished = list(spans.get_finished_spans())
    _check_children(finished, "GET /users/<int:user_id>")
    assert [s.name for s in finished if s.kind is SpanKind.CLIENT] == [
        "SELECT test", "SET", "PIPELINE",
    ]  # fmt: skip
    duration = "db_client_operation_duration_seconds_count"
    assert parse_metric(metrics, duration, db_system="postgresql", operation="SELECT",
                        status="ok") == 1  # fmt: skip
    assert parse_metric(metrics, duration, db_system="redis", operation="PIPELINE",
                        status="ok") == 1  # fmt: skip
