"""Fixtures for the tracing tests: in-memory telemetry, shut down after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from telemetry_web import Telemetry
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

Capture = Callable[..., CapturedTelemetry]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """``capture(config)``: a CapturedTelemetry (no global provider), closed after the test."""
    made: list[CapturedTelemetry] = []

    def factory(config: dict[str, Any] | None = None, **kwargs: Any) -> CapturedTelemetry:
        kwargs.setdefault("set_global", False)
        captured = capture_telemetry(config, **kwargs)
        made.append(captured)
        return captured

    yield factory
    for captured in made:
        captured.close()


@pytest.fixture
def telemetry_for() -> Iterator[Any]:
    """``telemetry_for(exporters)``: a Telemetry exporting there, shut down after the test."""
    made: list[Telemetry] = []

    def factory(exporters: dict[str, Any]) -> Telemetry:
        telemetry = Telemetry(
            {
                "service": "orders",
                "environment": "prod",
                "logging": {"sinks": {"console": False}},
                "tracing": {
                    "sampling": "always_on",
                    "exporters": exporters,
                    "resource_attributes": {"service.version": "1.4.2"},
                },
                # No local store: it would be the working directory's (the repository's).
                "store": {"enabled": False},
            },
            use_env=False,
            set_global=False,
            capture_stdlib_logging=False,
        )
        made.append(telemetry)
        return telemetry

    yield factory
    for telemetry in made:
        telemetry.shutdown(timeout=1.0)
