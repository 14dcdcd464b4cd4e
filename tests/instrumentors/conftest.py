"""Fixtures for the instrumentor tests: a captured Telemetry, the real services, clean patches.

PostgreSQL (``postgresql://postgres@127.0.0.1:5432/test``) and Redis
(``redis://127.0.0.1:6379/0``) are the machine's own; a test that needs one that is down fails
under ``CI=true`` and is skipped elsewhere. Every instrumentor made through the fixtures is
uninstrumented afterwards, so no patch outlives its test.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from telemetry_web.instrumentors import _base
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

from ._http_server import EchoServer
from ._support import ENVIRONMENT, POSTGRES_URL, REDIS_URL, SERVICE, require_service

MakeCaptured = Callable[..., CapturedTelemetry]


@pytest.fixture(autouse=True)
def strict_instrumentation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The instrumentors' own errors are raised in tests instead of being logged and swallowed."""
    monkeypatch.setattr(_base, "STRICT", True)


@pytest.fixture
def make_captured() -> Iterator[MakeCaptured]:
    """``make_captured(**config)``: a Telemetry recording into memory, shut down afterwards."""
    created: list[CapturedTelemetry] = []

    def factory(**config: Any) -> CapturedTelemetry:
        captured = capture_telemetry({"environment": ENVIRONMENT, **config}, service=SERVICE)
        created.append(captured)
        return captured

    yield factory
    for captured in reversed(created):
        captured.close()


@pytest.fixture
def captured(make_captured: MakeCaptured) -> CapturedTelemetry:
    """A Telemetry recording into memory."""
    return make_captured()


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    """Instrumentors appended here are fully uninstrumented after the test."""
    instrumentors: list[Any] = []
    yield instrumentors
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for instrumentor in reversed(instrumentors):
            instrumentor.uninstrument()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The machine's PostgreSQL (psycopg 3 driver), reachable or failing/skipping the test."""
    parts = urlsplit(POSTGRES_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def async_postgres_url(postgres_url: str) -> str:
    """The same PostgreSQL through asyncpg, for ``create_async_engine``."""
    return postgres_url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis, reachable or failing/skipping the test."""
    parts = urlsplit(REDIS_URL)
    require_service("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    return REDIS_URL


@pytest.fixture
def key() -> Callable[[str], str]:
    """``key("name")``: a Redis key (or table name) unique to this test."""
    prefix = f"tw_test_{uuid.uuid4().hex[:12]}"
    return lambda name: f"{prefix}_{name}"


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    """A loopback HTTP server answering with the request headers (status chosen by path)."""
    with EchoServer() as server:
        yield server
