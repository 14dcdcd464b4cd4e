"""Fixtures for the ASGI adapter tests: a Telemetry recording into memory, torn down afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry_web import Telemetry

from .._config import deep_merge
from ._support import ENVIRONMENT, SERVICE, ListSink

MakeTelemetry = Callable[..., Telemetry]
#: ``finished_spans(tel)``: flush ``tel`` and return every span exported so far.
FinishedSpans = Callable[[Telemetry], list[ReadableSpan]]

BASE_CONFIG: dict[str, Any] = {
    "service": SERVICE,
    "environment": ENVIRONMENT,
    "logging": {"sinks": {"console": False}},
    # The opt-in body-size histograms: these tests check each adapter's byte counts.
    "metrics": {"size_histograms": True},
    # No local store: it would be the working directory's (the repository's, under pytest).
    "store": {"enabled": False},
}


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    """Receives the spans of every Telemetry built by ``make_telemetry`` in this test."""
    return InMemorySpanExporter()


@pytest.fixture
def log_sink() -> ListSink:
    """Receives the log events of every Telemetry built by ``make_telemetry`` in this test."""
    return ListSink()


@pytest.fixture
def make_telemetry(
    span_exporter: InMemorySpanExporter, log_sink: ListSink
) -> Iterator[MakeTelemetry]:
    """``make_telemetry(**config)``: a Telemetry over the base config, shut down after the test."""
    created: list[Telemetry] = []

    def factory(**config: Any) -> Telemetry:
        telemetry = Telemetry(
            config=deep_merge(BASE_CONFIG, config),
            span_exporters=[span_exporter],
            log_sinks=[log_sink],
            use_env=False,
        )
        created.append(telemetry)
        return telemetry

    yield factory
    for telemetry in reversed(created):
        telemetry.shutdown()


@pytest.fixture
def tel(make_telemetry: MakeTelemetry) -> Telemetry:
    """A Telemetry with the base configuration."""
    return make_telemetry()


@pytest.fixture
def finished_spans(span_exporter: InMemorySpanExporter) -> FinishedSpans:
    """``finished_spans(tel)``: flush ``tel`` and return every span exported so far."""

    def read(telemetry: Telemetry) -> list[ReadableSpan]:
        telemetry.flush()
        return list(span_exporter.get_finished_spans())

    return read
