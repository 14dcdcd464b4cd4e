"""SQLAlchemy (``SELECT 1``) and Redis (``PING``) checks against the machine's PostgreSQL and
Redis, sync and async clients, given as objects or as URLs; and the same checks pointed at a
port that refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from telemetry_web import Telemetry
from telemetry_web.health import RedisCheck, SqlAlchemyCheck

sqlalchemy = pytest.importorskip("sqlalchemy")
redis = pytest.importorskip("redis")


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Any]:
    """The app's own (pooled) engine."""
    engine = sqlalchemy.create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
async def async_engine(postgres_url: str) -> AsyncIterator[Any]:
    """The app's own AsyncEngine (psycopg's async mode)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(postgres_url.replace("+psycopg:", "+psycopg_async:"))
    yield engine
    await engine.dispose()


async def checked(telemetry: Telemetry, check: Any, **options: Any) -> tuple[str, str | None]:
    telemetry.add_health_check("dep", check, **options)
    await telemetry.health.run_round()
    snapshot = telemetry.health.snapshot("dep")
    return snapshot.status, snapshot.last_error


async def test_sqlalchemy_engine_answers_select_1(telemetry: Telemetry, engine: Any) -> None:
    """The app's Engine, passed as it is, is checked with SELECT 1 in a thread."""
    assert await checked(telemetry, engine) == ("healthy", None)
    check = telemetry.health._entries["dep"].check
    assert isinstance(check, SqlAlchemyCheck)
    assert not check.is_async


async def test_sqlalchemy_async_engine_runs_on_the_loop(
    telemetry: Telemetry, async_engine: Any
) -> None:
    """An AsyncEngine is awaited on the runner's loop (the one its connections belong to)."""
    assert await checked(telemetry, async_engine) == ("healthy", None)
    assert telemetry.health._entries["dep"].check.is_async


async def test_sqlalchemy_refused_port_is_unhealthy(
    telemetry: Telemetry, refused_port: int
) -> None:
    """An engine whose server is not there fails with the driver's error."""
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{refused_port}/x")
    try:
        status, error = await checked(telemetry, engine)
    finally:
        engine.dispose()
    assert status == "unhealthy"
    assert error is not None
    assert error.startswith("OperationalError: (psycopg.OperationalError) connection failed")


async def test_sqlalchemy_url_from_configuration(make_captured: Any, postgres_url: str) -> None:
    """sqlalchemy {url} builds an engine without a pool, and hides the password in reports."""
    url = postgres_url.replace("postgres@", "postgres:hunter2@")
    check = {"name": "db", "check": {"sqlalchemy": {"url": url}}}
    captured = make_captured({"health": {"checks": [check]}})
    health = captured.telemetry.health
    await health.run_round()
    assert health.snapshot("db").status == "healthy"  # trust authentication ignores it
    described = health._entries["db"].check.describe()
    assert "hunter2" not in described
    assert described == url.replace("hunter2", "***")


async def test_redis_client_answers_ping(telemetry: Telemetry, redis_url: str) -> None:
    """The app's redis.Redis client is checked with PING."""
    client = redis.Redis.from_url(redis_url)
    try:
        assert await checked(telemetry, client) == ("healthy", None)
    finally:
        client.close()
    assert isinstance(telemetry.health._entries["dep"].check, RedisCheck)


async def test_redis_async_client_runs_on_the_loop(telemetry: Telemetry, redis_url: str) -> None:
    """A redis.asyncio client is awaited on the runner's loop."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await checked(telemetry, client) == ("healthy", None)
        assert telemetry.health._entries["dep"].check.is_async
    finally:
        await client.aclose()


async def test_redis_refused_port_is_unhealthy(telemetry: Telemetry, refused_port: int) -> None:
    """A client whose server is not there fails with a connection error."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(
        host="127.0.0.1", port=refused_port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        status, error = await checked(telemetry, client)
    finally:
        client.close()
    assert status == "unhealthy"
    assert error is not None
    assert error.startswith("ConnectionError: Error 111 connecting to 127.0.0.1:")


async def test_redis_url_from_configuration(make_captured: Any, redis_url: str) -> None:
    """redis {url} builds a client of its own, with the check's timeout on its sockets."""
    captured = make_captured(
        {"health": {"checks": [{"name": "cache", "check": {"redis": {"url": redis_url}},
                                "timeout": "2s"}]}}
    )  # fmt: skip
    health = captured.telemetry.health
    await health.run_round()
    assert health.snapshot("cache").status == "healthy"
    assert health._entries["cache"].check.describe() == redis_url
