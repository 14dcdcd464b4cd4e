"""Helpers for the instrumentor tests: reaching the real services, /metrics, span lookups."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from telemetry_web import Telemetry
from telemetry_web.instrumentors._base import BaseInstrumentor
from telemetry_web.testing import CapturedTelemetry

from .._metrics import Scrape

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVICE = "instrumentors-test"
ENVIRONMENT = "test"
BASE_LABELS = {"service": SERVICE, "environment": ENVIRONMENT}


def require_service(name: str, host: str, port: int, timeout: float = 2.0) -> None:
    """Connect to ``host:port``; when nothing answers, fail under ``CI=true``, skip elsewhere."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        message = (
            f"{name} is not reachable on {host}:{port} ({exc}); "
            "scripts/ensure-services.sh (run by `make test`) starts it"
        )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def metric_value(telemetry: Telemetry, name: str, **labels: str) -> float | None:
    """The value of one sample as ``/metrics`` renders it (parsed back), or None if absent."""
    assert telemetry.metrics_endpoint is not None
    status, _headers, body = telemetry.metrics_endpoint.render(None, None, None)
    assert status == 200
    return parse_metric(body.decode(), name, **labels)


def parse_metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels are exactly ``labels`` (+ the base ones)."""
    wanted = {**BASE_LABELS, **labels}
    found = [s.value for s in Scrape.parse(text).named(name) if s.labels == wanted]
    return float(found[0]) if found else None


def named(spans: Sequence[ReadableSpan], *names: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name in names]


def only(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def is_child_of(span: ReadableSpan, parent: Any) -> bool:
    context = parent.get_span_context() if hasattr(parent, "get_span_context") else parent.context
    return (
        span.parent is not None
        and span.parent.span_id == context.span_id
        and span.context.trace_id == context.trace_id
    )


InstrumentorT = TypeVar("InstrumentorT", bound=BaseInstrumentor)


def instrumentor_factory(
    kind: type[InstrumentorT], captured: CapturedTelemetry, cleanup: list[Any]
) -> Callable[..., InstrumentorT]:
    """``factory(telemetry=None, **options)``: a ``kind`` instrumentor on ``captured`` (or on
    ``telemetry``), appended to ``cleanup`` so that it is undone after the test."""

    def factory(telemetry: Any = None, **options: Any) -> InstrumentorT:
        instrumentor = kind(telemetry=telemetry or captured.telemetry, **options)
        cleanup.append(instrumentor)
        return instrumentor

    return factory
