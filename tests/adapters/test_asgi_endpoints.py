"""Built-in routes answered by the middleware: /metrics, /health, /ready, and excluded paths."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from telemetry_web import Telemetry, TelemetryMiddleware

from .._metrics import Scrape
from ._support import (
    SERVICE,
    ListSink,
    build_starlette,
    call_asgi,
    client_for,
    gunzip,
    labels,
    scrape,
)
from .conftest import FinishedSpans, MakeTelemetry

pytestmark = pytest.mark.asyncio

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def starlette_app(tel: Telemetry) -> Starlette:
    app = build_starlette()
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    return app


async def test_metrics_text_format(tel: Telemetry) -> None:
    """GET /metrics answers the Prometheus text format with our HTTP metric families."""
    async with client_for(starlette_app(tel)) as client:
        await client.get("/api/users/1")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# EOF" not in response.text
    metrics = Scrape.parse(response.text)
    assert metrics.family_types["http_requests"] == "counter"
    assert metrics.family_types["http_request_duration_seconds"] == "histogram"
    assert metrics.family_types["http_requests_in_progress"] == "gauge"
    assert metrics.value("http_requests_total", **labels("GET", "/api/users/{user_id}", 200)) == 1


async def test_metrics_openmetrics_with_exemplars(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """OpenMetrics is negotiated by Accept, ends in # EOF, and duration buckets carry exemplars."""
    async with client_for(starlette_app(tel)) as client:
        await client.get("/api/users/1")
        response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    metrics = Scrape.parse(response.text, openmetrics=True)
    series = labels("GET", "/api/users/{user_id}", 200)
    assert metrics.value("http_requests_total", **series) == 1
    buckets = [
        s
        for s in metrics.named("http_request_duration_seconds_bucket")
        if {k: v for k, v in s.labels.items() if k != "le"} == series
    ]
    exemplars = [s.exemplar for s in buckets if s.exemplar is not None]
    assert len(exemplars) == 1
    (span,) = finished_spans(tel)
    assert exemplars[0].labels["trace_id"] == format(span.context.trace_id, "032x")
    assert exemplars[0].labels["span_id"] == format(span.context.span_id, "016x")


async def test_metrics_gzip(tel: Telemetry) -> None:
    """Accept-Encoding: gzip compresses the body and says so in Content-Encoding."""
    app = starlette_app(tel)
    await call_asgi(app, "/api/users/1")
    response = await call_asgi(app, "/metrics", headers=[(b"accept-encoding", b"gzip, deflate")])
    assert response.status == 200
    assert response.header("content-encoding") == "gzip"
    assert response.header("content-length") == str(len(response.body))
    metrics = Scrape.parse(gunzip(response.body))
    assert metrics.value("http_requests_total", **labels("GET", "/api/users/{user_id}", 200)) == 1


async def test_metrics_head(tel: Telemetry) -> None:
    """HEAD /metrics answers 200 with no body."""
    response = await call_asgi(starlette_app(tel), "/metrics", method="HEAD")
    assert response.status == 200
    assert response.body == b""


async def test_health_and_ready(tel: Telemetry) -> None:
    """/health and /ready answer 200 JSON."""
    async with client_for(starlette_app(tel)) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")
    assert health.status_code == 200
    assert health.headers["content-type"] == "application/json"
    assert health.json()["status"] == "ok"
    assert health.json()["service"] == SERVICE
    assert ready.status_code == 200
    assert ready.headers["content-type"] == "application/json"
    body = ready.json()
    assert body["status"] == "ready"
    assert body["service"] == SERVICE
    assert body["checks"] == {}


async def test_builtin_routes_leave_no_telemetry(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """Scrapes and probes never appear in metrics, spans or request logs."""
    async with client_for(starlette_app(tel)) as client:
        for path in ("/metrics", "/health", "/ready", "/metrics", "/health", "/ready"):
            assert (await client.get(path)).status_code == 200
        metrics = await scrape(client)
    assert metrics.named("http_requests_total") == []
    assert metrics.named("http_request_duration_seconds_count") == []
    assert metrics.named("http_requests_in_progress") == []
    assert finished_spans(tel) == []
    assert log_sink.request_lines() == []


async def test_configured_paths(make_telemetry: MakeTelemetry) -> None:
    """Configured metrics, liveness and readiness paths replace the defaults."""
    tel = make_telemetry(
        metrics={"collectors": {"prometheus": {"path": "/internal/metrics"}}},
        health={"liveness_endpoint": "/livez", "readiness_endpoint": "/readyz"},
    )
    async with client_for(starlette_app(tel)) as client:
        livez = await client.get("/livez")
        readyz = await client.get("/readyz")
        old_paths = [await client.get(p) for p in ("/metrics", "/health", "/ready")]
        internal = await client.get("/internal/metrics")
    assert livez.status_code == 200
    assert livez.json()["status"] == "ok"
    assert readyz.status_code == 200
    assert readyz.json()["status"] == "ready"
    assert [r.status_code for r in old_paths] == [404, 404, 404]
    assert internal.status_code == 200
    metrics = Scrape.parse(internal.text)
    # Only the three old paths reached the app; the new built-in paths are not recorded.
    assert metrics.label_sets("http_requests_total") == [labels("GET", "<unmatched>", 404)]
    assert metrics.value("http_requests_total", **labels("GET", "<unmatched>", 404)) == 3


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Bearer s3cret ", 401),
        ("bearer s3cret", 401),
        ("Basic czNjcmV0", 401),
        ("s3cret", 401),
        ("Bearer s3cret", 200),
    ],
)
async def test_metrics_bearer_token(
    make_telemetry: MakeTelemetry, authorization: str | None, status: int
) -> None:
    """With a bearer token configured, /metrics answers 401 unless the exact token is presented."""
    tel = make_telemetry(metrics={"collectors": {"prometheus": {"bearer_token": "s3cret"}}})
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with client_for(starlette_app(tel)) as client:
        response = await client.get("/metrics", headers=headers)
        health = await client.get("/health")
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "http_requests" not in response.text
    else:
        assert "# TYPE http_requests_total counter" in response.text
    assert health.status_code == 200  # probes stay open


@pytest.mark.parametrize(
    ("excluded", "path"),
    [
        ("/api/users/7", "/api/users/7"),
        ("/v1/*", "/v1/users/3"),
    ],
)
async def test_exclude_paths(
    make_telemetry: MakeTelemetry,
    finished_spans: FinishedSpans,
    log_sink: ListSink,
    excluded: str,
    path: str,
) -> None:
    """Paths in ``http.exclude_paths`` (exact or prefix) are served but kept out of telemetry."""
    tel = make_telemetry(http={"exclude_paths": [excluded]})
    async with client_for(starlette_app(tel)) as client:
        skipped = await client.get(path)
        recorded = await client.get("/api/users/8")
        metrics = await scrape(client)
    assert skipped.status_code == 200
    assert recorded.status_code == 200
    assert metrics.label_sets("http_requests_total") == [labels("GET", "/api/users/{user_id}", 200)]
    assert metrics.value("http_requests_total", **labels("GET", "/api/users/{user_id}", 200)) == 1
    spans = finished_spans(tel)
    assert [(s.attributes or {})["url.path"] for s in spans] == ["/api/users/8"]
    assert [line["path"] for line in log_sink.request_lines()] == ["/api/users/8"]


async def test_builtin_path_with_other_method_reaches_the_app(tel: Telemetry) -> None:
    """Only GET and HEAD are answered by the built-in routes; a POST /metrics goes to the app."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.post("/metrics")
    assert response.status_code == 404
