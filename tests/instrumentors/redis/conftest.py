"""Redis fixtures: sync and asyncio clients on the real Redis, an instrumentor factory whose
instrumentors are undone after each test, and per-test keys removed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

from telemetry_web.instrumentors.redis import RedisInstrumentor
from telemetry_web.testing import CapturedTelemetry

from .._support import instrumentor_factory

MakeInstrumentor = Callable[..., RedisInstrumentor]


@pytest.fixture
def make_instrumentor(captured: CapturedTelemetry, cleanup: list[Any]) -> MakeInstrumentor:
    """``make_instrumentor(**options)``: an instrumentor on ``captured``, undone afterwards."""

    return instrumentor_factory(RedisInstrumentor, captured, cleanup)


@pytest.fixture
def make_client(redis_url: str, key: Callable[[str], str]) -> Iterator[Callable[[], redis.Redis]]:
    """``make_client()``: a sync client on the real Redis; this test's keys are deleted after."""
    clients: list[redis.Redis] = []

    def factory() -> redis.Redis:
        client = redis.Redis.from_url(redis_url)
        clients.append(client)
        return client

    yield factory
    if clients:
        clients[0].delete(*(clients[0].keys(key("*")) or [key("none")]))
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[[], redis.Redis]) -> redis.Redis:
    """A sync client on the real Redis."""
    return make_client()


@pytest.fixture
async def aclient(redis_url: str, key: Callable[[str], str]) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client on the real Redis; this test's keys are deleted after."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    keys = await client.keys(key("*"))
    if keys:
        await client.delete(*keys)
    await client.aclose()
