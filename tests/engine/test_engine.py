"""The Telemetry object: reconfiguration, the metrics port of its own, flush and shutdown."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from telemetry_web import ConfigError
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

from .._net import free_port


def one_request(captured: CapturedTelemetry, status: int = 200) -> None:
    captured.telemetry.lifecycle.begin(
        method="GET", scheme="http", path="/a", query="", route="/a", headers={}, client=None
    ).finish(status)


@pytest.fixture
def captured() -> Iterator[CapturedTelemetry]:
    captured = capture_telemetry()
    yield captured
    captured.close()


def test_configure_tracing_again_switches_sampling(captured: CapturedTelemetry) -> None:
    """configure_tracing with a new section applies to the next request."""
    one_request(captured)
    assert len(captured.spans()) == 1
    captured.telemetry.configure_tracing({"sampling": "always_off"})
    one_request(captured)
    assert len(captured.spans()) == 1  # the earlier span only: the exporter was flushed at swap
    assert captured.telemetry.settings.tracing.sampling.type == "always_off"


def test_configure_logging_again_changes_the_level(captured: CapturedTelemetry) -> None:
    """After configure_logging(level=warning) a 200 request line is no longer written."""
    one_request(captured, 200)
    captured.telemetry.configure_logging({"level": "warning", "sinks": {"console": False}})
    one_request(captured, 200)
    one_request(captured, 404)
    statuses = [e["status"] for e in captured.logs() if e["event"] == "request"]
    assert statuses == [200, 404]


def test_reconfigure_errors_name_the_section_path(captured: CapturedTelemetry) -> None:
    """A bad section given to configure_* is rejected with its full key path."""
    with pytest.raises(ConfigError) as info:
        captured.telemetry.configure_tracing({"sampling": {"type": "ratio", "rate": 3}})
    assert info.value.problems == [
        "tracing.sampling.rate: expected a number from 0 to 1 for type 'ratio', got 3.0"
    ]
    with pytest.raises(ConfigError, match=r"logging\.sinks\.elasticsearch\.url: expected"):
        captured.telemetry.configure_logging({"sinks": {"elasticsearch": {"url": "es:9200"}}})


def test_metrics_on_a_port_of_their_own() -> None:
    """prometheus.port serves /metrics on its own loopback port, behind the bearer token."""
    port = free_port()
    captured = capture_telemetry(
        {"metrics": {"collectors": {"prometheus": {
            "port": port, "host": "127.0.0.1", "bearer_token": "t0ken"}}}}
    )  # fmt: skip
    try:
        one_request(captured)
        url = f"http://127.0.0.1:{port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url, timeout=5)
        assert denied.value.code == 401
        denied.value.close()
        request = urllib.request.Request(
            url, headers={"Authorization": "Bearer t0ken", "Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            text = gzip.decompress(response.read()).decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        (sample,) = [s for s in families["http_requests"].samples if s.name.endswith("_total")]
        assert sample.labels == {
            "service": "test", "environment": "development",
            "method": "GET", "route": "/a", "status": "200",
        }  # fmt: skip
        assert sample.value == 1.0
        # The app's own endpoint table no longer holds /metrics.
        assert "/metrics" not in captured.telemetry.endpoints
    finally:
        captured.close()
    with pytest.raises(urllib.error.URLError, match="refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_shutdown_flushes_and_is_idempotent() -> None:
    """Everything recorded before shutdown() is delivered; a second shutdown() is harmless."""
    captured = capture_telemetry()
    one_request(captured)
    captured.telemetry.get_logger("app").info("last words")
    logs_sink = captured._logs
    spans_exporter = captured._spans
    captured.telemetry.shutdown()
    captured.telemetry.shutdown()
    assert [e["event"] for e in logs_sink.events] == ["request", "last words"]
    assert len(spans_exporter.get_finished_spans()) == 1


def test_loggers_made_before_configure_logging_keep_delivering(
    captured: CapturedTelemetry,
) -> None:
    """A logger obtained before configure_logging writes to the new pipeline afterwards."""
    log = captured.telemetry.get_logger("early")
    log.info("before")
    captured.telemetry.configure_logging(
        {"sinks": {"console": False}, "processors": [{"add_fields": {"fields": {"v": 2}}}]}
    )
    log.info("after")
    events = {e["event"]: e for e in captured.logs()}
    assert set(events) == {"before", "after"}
    assert events["after"]["v"] == 2
    assert "v" not in events["before"]


def test_span_exporters_given_in_code_survive_configure_tracing() -> None:
    """An exporter passed as span_exporters keeps receiving spans after configure_tracing
    rebuilt the provider, and is shut down with the Telemetry."""
    captured = capture_telemetry()
    try:
        one_request(captured)
        captured.telemetry.configure_tracing({"sampling": "always_on"})
        one_request(captured)
        assert len(captured.spans()) == 2
    finally:
        captured.close()
    assert captured._spans._stopped  # the in-memory exporter was shut down by close()
