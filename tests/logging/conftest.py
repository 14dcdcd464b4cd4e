"""Fixtures for the logging tests: a Telemetry whose log events stay in memory, shut down after."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from telemetry_web import Telemetry, semconv
from telemetry_web.testing import InMemoryLogSink

from .._config import deep_merge

SERVICE = "logging-test"
ENVIRONMENT = "test"

MakeTelemetry = Callable[..., Telemetry]


@pytest.fixture
def memory() -> InMemoryLogSink:
    """Receives the finished events of every Telemetry built by ``make_telemetry``."""
    return InMemoryLogSink()


@pytest.fixture
def make_telemetry(memory: InMemoryLogSink) -> Iterator[MakeTelemetry]:
    """``make_telemetry(**config)``: console off, the in-memory sink on, shut down afterwards."""
    created: list[Telemetry] = []
    base = {
        "service": SERVICE,
        "environment": ENVIRONMENT,
        "logging": {"sinks": {"console": False}},
        # No local store: it would be the working directory's (the repository's, under pytest).
        "store": {"enabled": False},
    }

    def factory(*, log_sinks: list[Any] | None = None, **config: Any) -> Telemetry:
        telemetry = Telemetry(
            deep_merge(base, config),
            log_sinks=[memory] if log_sinks is None else log_sinks,
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


@pytest.fixture(autouse=True)
def _restore_stdlib_levels() -> Iterator[None]:
    """Level changes made through a Telemetry must not leak into the next test."""
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
    for name in list(logging.root.manager.loggerDict):
        logger = logging.root.manager.loggerDict[name]
        if isinstance(logger, logging.Logger) and name.startswith("tests."):
            logger.setLevel(logging.NOTSET)


def events_of(
    memory: InMemoryLogSink, tel: Telemetry, logger: str | None = None
) -> list[dict[str, Any]]:
    """Every event delivered so far (flushed first), optionally of one logger."""
    tel.flush()
    return [e for e in memory.events if logger is None or e.get("logger") == logger]


def dropped(tel: Telemetry, sink: str, reason: str) -> float:
    """The value of telemetry_log_events_dropped_total{sink, reason} (documented labels only)."""
    assert sink in semconv.LOG_DROP_SINKS
    assert reason in semconv.LOG_DROP_REASONS
    value = tel.registry.get_sample_value(
        "telemetry_log_events_dropped_total",
        {"service": SERVICE, "environment": ENVIRONMENT, "sink": sink, "reason": reason},
    )
    return value or 0.0
