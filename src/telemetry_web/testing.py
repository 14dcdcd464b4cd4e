"""Helpers for testing code instrumented with telemetry-web: everything captured in memory.

Example::

    from telemetry_web.testing import capture_telemetry

    def test_checkout():
        captured = capture_telemetry(service="shop")
        app.add_middleware(TelemetryMiddleware, telemetry=captured.telemetry)
        client.post("/checkout")  # drive the app
        assert captured.spans()[0].name == "POST /checkout"
        assert captured.logs()[-1]["status"] == 201
        assert captured.sample("http_requests_total", route="/checkout", status="201") == 1
        captured.close()
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest

from ._engine import Telemetry

__all__ = ["CapturedTelemetry", "InMemoryLogSink", "capture_telemetry"]


class InMemoryLogSink:
    """A log sink that keeps every finished event dict."""

    name = "memory"

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        with self._lock:
            self._events.extend(events)

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


class CapturedTelemetry:
    """A :class:`Telemetry` whose spans and log events stay in memory for assertions."""

    def __init__(self, telemetry: Telemetry, spans: InMemorySpanExporter, logs: InMemoryLogSink):
        self.telemetry = telemetry
        self._spans = spans
        self._logs = logs

    def spans(self) -> list[ReadableSpan]:
        """Every finished span so far (queued ones are flushed first)."""
        self.telemetry.flush()
        return list(self._spans.get_finished_spans())

    def logs(self) -> list[dict[str, Any]]:
        """Every log event so far, as the sinks receive them."""
        self.telemetry.flush()
        return self._logs.events

    def metrics_text(self) -> str:
        return generate_latest(self.telemetry.registry).decode()

    def sample(self, name: str, **labels: str) -> float | None:
        """The value of one sample; constant labels (service, environment) may be left out."""
        constant = {k: v for k, v in self.telemetry.metrics.constant_labels}
        return self.telemetry.registry.get_sample_value(name, {**constant, **labels})

    def clear(self) -> None:
        self.telemetry.flush()
        self._spans.clear()
        self._logs.clear()

    def close(self) -> None:
        self.telemetry.shutdown()


def capture_telemetry(
    config: Mapping[str, Any] | None = None, *, service: str = "test", **kwargs: Any
) -> CapturedTelemetry:
    """A Telemetry that ignores the environment, prints nothing and captures everything.

    It keeps no local store (a test's telemetry would land in ``./.telemetry`` of the directory
    the tests run from) unless ``config`` has a ``store`` section.
    """
    merged: dict[str, Any] = {"logging": {"sinks": {"console": False}}}
    for key, value in (config or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    merged.setdefault("store", {"enabled": False})
    spans = InMemorySpanExporter()
    logs = InMemoryLogSink()
    kwargs.setdefault("use_env", False)
    telemetry = Telemetry(
        merged, service=service, span_exporters=[spans], log_sinks=[logs], **kwargs
    )
    return CapturedTelemetry(telemetry, spans, logs)
