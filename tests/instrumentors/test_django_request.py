"""Inside a real Django request: database and cache spans are children of the request span of
the Django middleware, and the middleware's /metrics serves their samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from opentelemetry.trace import SpanKind

import tests.adapters.django.conftest  # noqa: F401  (configures Django settings, once)
from telemetry_web.instrumentors import RedisInstrumentor, SQLAlchemyInstrumentor
from telemetry_web.testing import capture_telemetry

from . import django_urls
from ._support import ENVIRONMENT, SERVICE, is_child_of, parse_metric

sqlalchemy = pytest.importorskip("sqlalchemy")


def test_django_request_parents_engine_and_redis_spans(
    cleanup: list[Any], postgres_url: str, redis_url: str, key: Callable[[str], str]
) -> None:
    """A Django view querying PostgreSQL and Redis: both client spans are children of the
    request span, and /metrics shows one SELECT and one SET for the request."""
    from django.test import Client, override_settings

    from telemetry_web.django import set_telemetry

    captured = capture_telemetry({"environment": ENVIRONMENT}, service=SERVICE)
    for instrumentor in (
        SQLAlchemyInstrumentor(telemetry=captured.telemetry),
        RedisInstrumentor(telemetry=captured.telemetry),
    ):
        instrumentor.instrument()
        cleanup.append(instrumentor)
    engine = sqlalchemy.create_engine(postgres_url)
    cache = redis.Redis.from_url(redis_url)
    django_urls.STATE.update(engine=engine, cache=cache, key=key)
    previous = set_telemetry(captured.telemetry)
    try:
        with override_settings(ROOT_URLCONF="tests.instrumentors.django_urls"):
            client = Client()
            response = client.get("/users/7")
            assert response.json() == {"name": "user 7", "cached": "user 7"}
            metrics = client.get("/metrics").content.decode()
        spans = captured.spans()
    finally:
        set_telemetry(previous)
        cache.delete(key("7"))
        cache.close()
        engine.dispose()
        captured.close()
    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == "GET /users/<int:user_id>"
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert [s.name for s in clients] == ["SELECT test", "SET", "GET"]
    assert all(is_child_of(span, request) for span in clients)
    duration = "db_client_operation_duration_seconds_count"
    assert parse_metric(metrics, duration, db_system="postgresql", operation="SELECT",
                        status="ok") == 1  # fmt: skip
    assert parse_metric(metrics, duration, db_system="redis", operation="SET", status="ok") == 1
