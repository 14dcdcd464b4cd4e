"""OTLP metrics: the request decoded with ``opentelemetry-proto``, over HTTP/protobuf and gRPC.

Loopback receivers (tests/tracing/_receivers.py) decode what the output sends; the values are
compared with what ``/metrics`` shows for the same requests, the resource with the spans'.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import CounterMetricFamily

from telemetry_web import ConfigError, Telemetry, TelemetryMiddleware
from telemetry_web.metrics.outputs import Snapshot
from telemetry_web.metrics.outputs._otlp import _Encoder, encode_request, resolve_endpoint

from .._metrics import Scrape
from .._net import free_port
from .._requests import ok_app
from .._timing import assert_not_slowed
from .._waiting import wait_until
from ..servers.conftest import serve
from ..test_optional_imports import run_hidden
from ..tracing._receivers import (
    OtlpGrpcMetricsReceiver,
    OtlpMetricsReceiver,
    OtlpReceiver,
    attributes,
    metric_points,
)

ROUTE_POINT = {"method": "GET", "route": "<unmatched>", "status": "200"}

# --- the request ----------------------------------------------------------------------------


def _decoded(snapshot: Snapshot, constant: dict[str, str], encoder: Any = None) -> Any:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    request = (
        encoder.request(snapshot, {"service.name": "svc"})
        if encoder is not None
        else encode_request(snapshot, {"service.name": "svc", "process.pid": 7}, constant)
    )
    return ExportMetricsServiceRequest.FromString(request.SerializeToString())


def test_types_values_bounds_and_start_times() -> None:
    """Counters are cumulative monotonic sums started at ``_created``, gauges gauges, histograms
    per-bucket counts with the finite ``le`` as bounds and +Inf last; service/environment are
    left to the resource, other labels kept."""
    registry = CollectorRegistry()
    labels = ["service", "environment", "team", "queue"]
    jobs = Counter("jobs", "Jobs done.", labels, registry=registry)
    jobs.labels("svc", "prod", "pay", "q1").inc(2)
    jobs.labels("svc", "prod", "pay", "q2").inc(5)
    Gauge("depth", "Queue depth.", registry=registry).set(-1.5)
    latency = Histogram("lat_seconds", "Latency.", buckets=[0.1, 1.0], registry=registry)
    for value in (0.05, 0.5, 0.5, 5.0):
        latency.observe(value)
    created = {s.labels.get("queue"): s.value for f in registry.collect() for s in f.samples
               if s.name == "jobs_created"}  # fmt: skip
    snapshot = Snapshot(tuple(registry.collect()), 1_700_000_000_500, 0)
    request = _decoded(snapshot, {"service": "svc", "environment": "prod", "team": "pay"})

    (resource_metrics,) = request.resource_metrics
    assert attributes(resource_metrics.resource.attributes) == {"service.name": "svc",
                                                                "process.pid": 7}  # fmt: skip
    (scope_metrics,) = resource_metrics.scope_metrics
    assert scope_metrics.scope.name == "telemetry_web"
    found = metric_points(request)
    assert set(found) == {"jobs_total", "depth", "lat_seconds"}

    metric, points = found["jobs_total"]
    assert metric.description == "Jobs done."
    assert metric.sum.is_monotonic
    assert metric.sum.aggregation_temporality == 2  # CUMULATIVE
    by_queue = {attrs["queue"]: (attrs, p) for attrs, p in points}
    assert by_queue["q1"][0] == {"team": "pay", "queue": "q1"}
    assert by_queue["q1"][1].as_double == 2.0
    assert by_queue["q2"][1].as_double == 5.0
    assert by_queue["q1"][1].start_time_unix_nano == int(created["q1"] * 1e9)
    assert by_queue["q1"][1].time_unix_nano == 1_700_000_000_500_000_000

    metric, [(attrs, point)] = found["depth"]
    assert metric.WhichOneof("data") == "gauge"
    assert (attrs, point.as_double) == ({}, -1.5)

    metric, [(attrs, point)] = found["lat_seconds"]
    assert metric.histogram.aggregation_temporality == 2
    assert list(point.explicit_bounds) == [0.1, 1.0]
    assert list(point.bucket_counts) == [1, 2, 1]
    assert point.count == 4
    assert point.sum == pytest.approx(6.05)
    assert attrs == {}


def test_start_time_without_created_is_stable_and_moves_on_a_reset() -> None:
    """Without ``_created`` (merged workers) a series keeps the start of its first push, and a
    value that went down (a reset) starts again at the push's time."""
    encoder = _Encoder({})

    def push(value: float, at_ms: int) -> Any:
        family = CounterMetricFamily("hits", "Hits.", labels=["route"])
        family.add_metric(["/a"], value)
        request = _decoded(Snapshot((family,), at_ms, 1), {}, encoder)
        ((_attrs, point),) = metric_points(request)["hits_total"][1]
        return point

    first = push(3, 1_000)
    assert first.start_time_unix_nano == 1_000_000_000
    assert push(5, 2_000).start_time_unix_nano == 1_000_000_000
    reset = push(1, 3_000)
    assert reset.start_time_unix_nano == 3_000_000_000
    assert (reset.as_double, reset.time_unix_nano) == (1.0, 3_000_000_000)


@pytest.mark.parametrize(
    ("endpoint", "protocol", "expected"),
    [
        (None, "http/protobuf", "http://localhost:4318/v1/metrics"),
        (None, "grpc", "http://localhost:4317"),
        ("http://collector:4318", "http/protobuf", "http://collector:4318/v1/metrics"),
        ("http://collector:4318/", "http/protobuf", "http://collector:4318/v1/metrics"),
        ("https://c/v1/metrics", "http/protobuf", "https://c/v1/metrics"),
        ("https://c:4317", "grpc", "https://c:4317"),
    ],
)
def test_endpoint_defaults(endpoint: str | None, protocol: str, expected: str) -> None:
    """The defaults per protocol, and ``/v1/metrics`` added to a collector address."""
    assert resolve_endpoint(endpoint, protocol) == expected


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "otlp", "protocol": "http"}, "metrics.exporters[0].protocol"),
        (
            {"type": "prometheus", "endpoint": "http://p/api/v1/write", "protocol": "grpc"},
            "metrics.exporters[0].protocol",
        ),
        ({"type": "otlp", "endpoint": "collector:4317"}, "metrics.exporters[0].endpoint"),
    ],
)
def test_bad_configuration_names_the_key(entry: dict[str, Any], message: str) -> None:
    """A bad protocol, a protocol on another type and a non-URL endpoint are ConfigErrors."""
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        telemetry_with(entry)


def test_missing_extra_is_reported_at_startup() -> None:
    """Without ``opentelemetry-proto`` an otlp entry fails at startup with the pip command."""
    result = run_hidden(
        """
        from telemetry_web import Telemetry, MissingExtraError
        try:
            Telemetry(service="x", use_env=False, config={
                "metrics": {"exporters": [{"type": "otlp"}]}, "store": {"enabled": False},
                "logging": {"sinks": {"console": False}}})
        except MissingExtraError as exc:
            print(exc)
        """,
        ["opentelemetry.proto", "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2"],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "metrics.exporters (type 'otlp') needs 'opentelemetry-exporter-otlp', which is not "
        "installed: pip install 'telemetry-web[otlp]'"
    )


# --- through the middleware -------------------------------------------------------------------


def telemetry_with(entry: dict[str, Any], tracing: dict[str, Any] | None = None) -> Telemetry:
    config = {"service": "shop", "service_version": "2.0", "environment": "test",
              "labels": {"team": "pay"}, "tracing": tracing or {"enabled": False},
              "logging": {"sinks": {"console": False}}, "store": {"enabled": False},
              "metrics": {"exporters": [{"interval": "0.2s", "timeout": "0.5s",
                                         **entry}]}}  # fmt: skip
    return Telemetry(config=config, use_env=False, set_global=False,
                     capture_stdlib_logging=False)  # fmt: skip


def send_requests(telemetry: Telemetry, count: int) -> tuple[list[float], str]:
    """``count`` requests through TelemetryMiddleware; their durations and then ``/metrics``."""
    app = TelemetryMiddleware(ok_app, telemetry=telemetry)
    durations: list[float] = []
    page: list[str] = []

    async def run() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            for _ in range(count):
                started = time.perf_counter()
                assert (await client.get("/orders")).status_code == 200
                durations.append(time.perf_counter() - started)
            page.append((await client.get("/metrics")).text)

    asyncio.run(run())
    return durations, page[0]


def dropped(telemetry: Telemetry, reason: str) -> float:
    value = telemetry.registry.get_sample_value(
        "telemetry_metrics_dropped_total",
        {"exporter": "otlp", "reason": reason, "service": "shop", "environment": "test",
         "team": "pay"},
    )  # fmt: skip
    return value or 0.0


def scraped(page: str, name: str, **labels: str) -> float:
    values = [s.value for s in Scrape.parse(page).named(name)
              if labels.items() <= s.labels.items()]  # fmt: skip
    assert len(values) == 1, (name, labels, values)
    return float(values[0])


def assert_matches_metrics_page(request: Any, page: str, requests: int) -> None:
    """The counter and the duration histogram equal what ``/metrics`` shows."""
    found = metric_points(request)
    _metric, points = found["http_requests_total"]
    [(attrs, point)] = [(a, p) for a, p in points if a.get("route") == "<unmatched>"]
    assert attrs == {**ROUTE_POINT, "team": "pay"}  # service/environment: the resource's
    assert point.as_double == requests == scraped(page, "http_requests_total", **ROUTE_POINT)
    _metric, points = found["http_request_duration_seconds"]
    [(attrs, point)] = [(a, p) for a, p in points if a.get("route") == "<unmatched>"]
    name = "http_request_duration_seconds"
    labels = {"method": "GET", "route": "<unmatched>"}
    assert point.count == requests == scraped(page, f"{name}_count", **labels)
    assert point.sum == scraped(page, f"{name}_sum", **labels)
    cumulative = [sum(point.bucket_counts[: i + 1]) for i in range(len(point.bucket_counts))]
    les = [*point.explicit_bounds, math.inf]
    assert len(les) == len(cumulative)
    for le, value in zip(les, cumulative, strict=True):
        text = "+Inf" if math.isinf(le) else repr(le)
        assert value == scraped(page, f"{name}_bucket", le=text, **labels), le


def test_http_values_equal_the_metrics_page_and_the_resource_the_spans() -> None:
    """37 requests: the pushed counter and histogram (count, sum, buckets) equal ``/metrics``;
    the resource equals the spans'; the headers are OTLP/HTTP's and the configured ones."""
    with OtlpMetricsReceiver() as receiver, OtlpReceiver() as spans:
        telemetry = telemetry_with(
            {"type": "otlp", "endpoint": f"http://127.0.0.1:{receiver.port}",
             "headers": {"X-Tenant": "acme"}, "interval": "1h"},
            tracing={"exporters": {"otlp": {"endpoint": spans.url}}},
        )  # fmt: skip
        try:
            _durations, page = send_requests(telemetry, 37)
            telemetry.flush(5.0)
            assert receiver.wait_for(lambda: len(receiver.bodies) >= 1)
            wait_until(lambda: spans.count() >= 37)  # count() takes the receiver's lock
        finally:
            telemetry.shutdown(2.0)
        requests = receiver.requests()
        assert len(requests) == 2  # the flush's and the shutdown's
        for request in requests:
            assert_matches_metrics_page(request, page, 37)
        resource = attributes(request.resource_metrics[0].resource.attributes)
        assert resource == spans.spans()[0][0]
        assert resource["service.name"] == "shop"
        assert resource["service.version"] == "2.0"
        assert resource["deployment.environment"] == "test"
        assert isinstance(resource["process.pid"], int)
        assert resource["service.instance.id"]
        headers = receiver.headers[0]
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["user-agent"].startswith("telemetry-web/")
        assert headers["x-tenant"] == "acme"
        assert dropped(telemetry, "rejected") == dropped(telemetry, "export_failed") == 0


def test_grpc_values_equal_the_metrics_page_and_headers_are_metadata() -> None:
    """Over gRPC: the same exact values, and the headers as call metadata."""
    with OtlpGrpcMetricsReceiver() as receiver:
        telemetry = telemetry_with({"type": "otlp", "endpoint": receiver.url, "protocol": "grpc",
                                    "headers": {"X-Tenant": "acme"}, "interval": "1h"})  # fmt: skip
        try:
            _durations, page = send_requests(telemetry, 23)
            telemetry.flush(5.0)
        finally:
            telemetry.shutdown(2.0)
        assert len(receiver.accepted) == 2  # the flush's and the shutdown's
        for request in receiver.accepted:
            assert_matches_metrics_page(request, page, 23)
        assert receiver.calls[0][2]["x-tenant"] == "acme"


# --- faults -----------------------------------------------------------------------------------


def failure_lines(caplog: pytest.LogCaptureFixture, where: str) -> list[str]:
    """This test's report lines (a Telemetry another test left running may log too)."""
    return [r.getMessage() for r in caplog.records
            if "Metric export failed" in r.message and f"to {where} (" in r.message]  # fmt: skip


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_refused_collector_never_slows_requests(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listening: requests keep their speed, drops are counted, one line is logged."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    url = f"http://127.0.0.1:{free_port()}"
    telemetry = telemetry_with({"type": "otlp", "endpoint": url, "protocol": protocol,
                                "interval": "0.05s"})  # fmt: skip
    try:
        durations: list[float] = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            durations.extend(send_requests(telemetry, 20)[0])
        assert_not_slowed(durations)
        assert dropped(telemetry, "export_failed") > 0
        assert dropped(telemetry, "rejected") == 0
    finally:
        telemetry.shutdown(0.5)
    where = url + "/v1/metrics" if protocol == "http/protobuf" else url
    lines = failure_lines(caplog, where)
    assert len(lines) == 1
    assert lines[0].startswith("Metric export failed: connection refused")
    assert f"to {where} (exporter otlp;" in lines[0]


def test_grpc_unavailable_is_retried_then_recovers(caplog: pytest.LogCaptureFixture) -> None:
    """UNAVAILABLE twice: retried with backoff, reported once, then the exact counts arrive."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    with OtlpGrpcMetricsReceiver() as receiver:
        receiver.script = ["UNAVAILABLE", "UNAVAILABLE"]
        telemetry = telemetry_with({"type": "otlp", "endpoint": receiver.url,
                                    "protocol": "grpc"})  # fmt: skip
        try:
            send_requests(telemetry, 5)
            assert receiver.wait_for(lambda: len(receiver.accepted) >= 1)
            _durations, page = send_requests(telemetry, 2)
            telemetry.flush(2.0)
            assert_matches_metrics_page(receiver.accepted[-1], page, 7)
            assert dropped(telemetry, "rejected") == 0
        finally:
            telemetry.shutdown(2.0)
        codes = [code for _at, code, _m in receiver.calls]
        assert codes[:3] == ["UNAVAILABLE", "UNAVAILABLE", "OK"]
        assert receiver.calls[2][0] - receiver.calls[1][0] >= 1.0  # backoff, not the interval
    lines = failure_lines(caplog, receiver.url)
    assert len(lines) == 1
    assert lines[0].startswith(
        f"Metric export failed: gRPC UNAVAILABLE (scripted unavailable) to {receiver.url}"
    )


def test_grpc_retry_info_is_honoured() -> None:
    """RESOURCE_EXHAUSTED with a RetryInfo of 1.5 s spaces the attempts more than the first
    backoff (1 s) would."""
    with OtlpGrpcMetricsReceiver() as receiver:
        receiver.script = ["RESOURCE_EXHAUSTED"]
        receiver.retry_delay = 1.5
        telemetry = telemetry_with({"type": "otlp", "endpoint": receiver.url, "protocol": "grpc",
                                    "interval": "0.1s"})  # fmt: skip
        try:
            assert receiver.wait_for(lambda: len(receiver.calls) >= 2, timeout=10)
        finally:
            telemetry.shutdown(1.0)
        codes = [code for _t, code, _m in receiver.calls]
        assert codes[:2] == ["RESOURCE_EXHAUSTED", "OK"]
        assert receiver.calls[1][0] - receiver.calls[0][0] >= 1.45


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_invalid_argument_is_rejected_not_retried(
    protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    """INVALID_ARGUMENT (gRPC) or 400 (HTTP): one attempt per interval, counted as rejected."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    grpc_peer = OtlpGrpcMetricsReceiver() if protocol == "grpc" else None
    http_peer = OtlpMetricsReceiver() if protocol != "grpc" else None
    with grpc_peer or http_peer:  # type: ignore[union-attr]
        if grpc_peer is not None:
            grpc_peer.default = "INVALID_ARGUMENT"
            url = grpc_peer.url
        else:
            assert http_peer is not None
            http_peer.status = 400
            url = f"http://127.0.0.1:{http_peer.port}/v1/metrics"
        telemetry = telemetry_with({"type": "otlp", "endpoint": url, "protocol": protocol,
                                    "interval": "1s"})  # fmt: skip
        try:
            send_requests(telemetry, 3)
            time.sleep(1.6)  # one collection; a retry would have come after 1 s
            assert dropped(telemetry, "rejected") > 0
            assert dropped(telemetry, "export_failed") == 0
            if grpc_peer is not None:
                assert [code for _t, code, _m in grpc_peer.calls] == ["INVALID_ARGUMENT"]
        finally:
            telemetry.shutdown(0.5)
    lines = failure_lines(caplog, url)
    assert len(lines) == 1
    cause = "gRPC INVALID_ARGUMENT (scripted invalid_argument)" if grpc_peer else "HTTP 400"
    assert lines[0].startswith(f"Metric export failed: {cause} to ")


def test_hanging_grpc_collector_is_cut_by_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    """A collector that never answers: each call ends at ``timeout`` (DEADLINE_EXCEEDED, retried),
    requests keep their speed, shutdown keeps its budget and counts the snapshot."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    with OtlpGrpcMetricsReceiver() as receiver:
        receiver.hang = True
        telemetry = telemetry_with({"type": "otlp", "endpoint": receiver.url, "protocol": "grpc",
                                    "timeout": "0.3s"})  # fmt: skip
        durations = send_requests(telemetry, 50)[0]
        assert receiver.wait_for(lambda: len(receiver.calls) >= 2, timeout=10)
        durations += send_requests(telemetry, 50)[0]
        assert_not_slowed(durations)
        started = time.monotonic()
        telemetry.shutdown(1.0)
        assert time.monotonic() - started < 1.5
        assert dropped(telemetry, "shutdown") + dropped(telemetry, "export_failed") > 0
        assert dropped(telemetry, "rejected") == 0
    lines = failure_lines(caplog, receiver.url)
    assert len(lines) == 1
    assert lines[0].startswith(f"Metric export failed: timed out (gRPC DEADLINE_EXCEEDED) to "
                               f"{receiver.url}")  # fmt: skip


# --- several workers --------------------------------------------------------------------------


@pytest.mark.server
def test_two_workers_push_merged_values_from_one_process(tmp_path: Path) -> None:
    """uvicorn with two workers: one process pushes (one pid on every request), and the counter
    it pushes is the total of both workers."""
    with OtlpMetricsReceiver() as receiver:
        config = tmp_path / "telemetry.yaml"
        config.write_text(
            "service: shop\nmetrics:\n  exporters:\n    - type: otlp\n"
            f"      endpoint: http://127.0.0.1:{receiver.port}\n      interval: 0.5s\n"
        )
        port = free_port()
        args = ["uvicorn", "sample_apps.starlette_app:app", "--workers", "2",
                "--port", str(port), "--no-access-log"]  # fmt: skip
        env = {"TELEMETRY_CONFIG": str(config), "TELEMETRY_STORE__ENABLED": "false"}
        route = "/api/users/{user_id:int}"

        def pushed_total() -> float:
            requests = receiver.requests()
            if not requests:
                return -1.0
            found = metric_points(requests[-1]).get("http_requests_total")
            points = found[1] if found else []
            return float(sum(p.as_double for a, p in points if a.get("route") == route))

        with serve(args, port, env=env):
            limits = httpx.Limits(max_keepalive_connections=0)  # new connections: both workers
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
                for i in range(60):
                    assert client.get(f"/api/users/{1 + i % 2}").status_code == 200
            assert receiver.wait_for(lambda: pushed_total() == 60, timeout=20), pushed_total()
            time.sleep(1.5)
            requests = receiver.requests()
        pids = {attributes(r.resource_metrics[0].resource.attributes)["process.pid"]
                for r in requests}  # fmt: skip
        assert len(pids) == 1
        for request in requests[-2:]:
            _metric, points = metric_points(request)["http_requests_total"]
            assert all("pid" not in attrs for attrs, _p in points)
            assert all(attrs.get("service") is None for attrs, _p in points)
