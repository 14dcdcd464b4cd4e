"""Websockets and lifespan through the ASGI middleware (starlette's TestClient drives both)."""

from __future__ import annotations

import warnings

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from telemetry_web import Telemetry, TelemetryMiddleware

from ._support import LifespanFlags, ListSink, build_starlette, scrape_telemetry
from .conftest import FinishedSpans

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns (an error here) on plain httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient


def test_websocket_gets_one_span_and_no_http_metrics(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """A websocket connection yields one span and no HTTP metric samples."""
    app = build_starlette()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"
    spans = finished_spans(tel)
    assert len(spans) == 1
    (span,) = spans
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /ws"
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == "/ws"
    assert attributes["url.path"] == "/ws"
    assert attributes["network.protocol.name"] == "websocket"
    assert attributes["http.response.status_code"] == 101
    metrics = scrape_telemetry(tel)
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_count",
        "http_requests_in_progress",
        "http_request_size_bytes_count",
        "http_response_size_bytes_count",
    ):
        assert metrics.named(name) == [], name


def test_lifespan_passes_through(tel: Telemetry) -> None:
    """The app's startup and shutdown run when the middleware is installed."""
    flags = LifespanFlags()
    app = build_starlette(flags=flags)
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    with TestClient(app) as client:
        assert flags.started
        assert not flags.stopped
        assert client.get("/api/users/1").status_code == 200
    assert flags.stopped


def test_lifespan_passes_through_wrapped_app(tel: Telemetry) -> None:
    """The app's startup and shutdown run when the whole app is wrapped."""
    flags = LifespanFlags()
    app = TelemetryMiddleware(build_starlette(flags=flags), telemetry=tel)
    with TestClient(app) as client:
        assert flags.started
        assert client.get("/api/users/1").status_code == 200
    assert flags.stopped


def test_lifespan_shutdown_flushes_spans(
    tel: Telemetry, span_exporter: InMemorySpanExporter, log_sink: ListSink
) -> None:
    """Lifespan shutdown delivers queued spans and log lines without an explicit flush."""
    app = build_starlette()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    with TestClient(app) as client:
        client.get("/api/users/1")
    assert len(span_exporter.get_finished_spans()) == 1
    assert len(log_sink.request_lines()) == 1


def test_testclient_http_request(tel: Telemetry, finished_spans: FinishedSpans) -> None:
    """Requests through the synchronous TestClient are recorded like any other."""
    app = build_starlette()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    with TestClient(app) as client:
        assert client.get("/v1/users/9").status_code == 200
    (span,) = finished_spans(tel)
    assert span.name == "GET /v1/users/{id:int}"
