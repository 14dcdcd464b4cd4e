"""SQLAlchemy fixtures: engines on the real PostgreSQL and SQLite in memory, an instrumentor
factory whose instrumentors are undone after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from telemetry_web.instrumentors.sqlalchemy import SQLAlchemyInstrumentor
from telemetry_web.testing import CapturedTelemetry

from .._support import instrumentor_factory

MakeInstrumentor = Callable[..., SQLAlchemyInstrumentor]


@pytest.fixture
def make_instrumentor(captured: CapturedTelemetry, cleanup: list[Any]) -> MakeInstrumentor:
    """``make_instrumentor(**options)``: an instrumentor on ``captured``, undone afterwards."""

    return instrumentor_factory(SQLAlchemyInstrumentor, captured, cleanup)


@pytest.fixture
def make_engine(postgres_url: str) -> Iterator[Callable[..., Engine]]:
    """``make_engine(url=None, **kwargs)``: an engine (PostgreSQL by default), disposed after."""
    engines: list[Engine] = []

    def factory(url: str | None = None, **kwargs: Any) -> Engine:
        engine = create_engine(url or postgres_url, **kwargs)
        engines.append(engine)
        return engine

    yield factory
    for engine in engines:
        engine.dispose()


@pytest.fixture
def pg(make_engine: Callable[..., Engine]) -> Engine:
    """An engine on the real PostgreSQL (psycopg 3)."""
    return make_engine()


@pytest.fixture
def lite(make_engine: Callable[..., Engine]) -> Engine:
    """An engine on SQLite in memory."""
    return make_engine("sqlite://")
