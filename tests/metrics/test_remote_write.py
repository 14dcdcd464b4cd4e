"""Prometheus remote write: the wire format, a real Prometheus server, and misbehaving receivers.

The encoding is checked with decoders written apart from ours (cramjam's snappy, the protobuf
runtime over descriptors built here from remote.proto/types.proto); the end-to-end tests start
the Debian ``prometheus`` binary with its remote-write receiver and read the series back
through its query API.
"""

from __future__ import annotations

import logging
import math
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cramjam
import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from telemetry_web import Telemetry
from telemetry_web.metrics.outputs import Snapshot
from telemetry_web.metrics.outputs._remote_write import (
    encode_write_request,
    snappy_block,
    write_request_series,
)

from .._net import free_port
from .._requests import send_requests
from .._timing import assert_not_slowed
from .._waiting import wait_until
from ..conftest import require_tool
from ..servers.conftest import serve

# --- an independent decoder ------------------------------------------------------------------


def _write_request_class() -> Any:
    """prometheus.WriteRequest from descriptors (prompb/remote.proto and types.proto)."""
    f = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="test_prompb.proto", package="test_prompb")

    def message(name: str, *fields: tuple[str, int, int, str | None, bool]) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, type_name, repeated in fields:
            msg.field.add(
                name=field_name, number=number, type=kind,
                label=f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL,
                **({"type_name": type_name} if type_name else {}),
            )  # fmt: skip

    message("Label", ("name", 1, f.TYPE_STRING, None, False),
            ("value", 2, f.TYPE_STRING, None, False))  # fmt: skip
    message("Sample", ("value", 1, f.TYPE_DOUBLE, None, False),
            ("timestamp", 2, f.TYPE_INT64, None, False))  # fmt: skip
    message("TimeSeries", ("labels", 1, f.TYPE_MESSAGE, ".test_prompb.Label", True),
            ("samples", 2, f.TYPE_MESSAGE, ".test_prompb.Sample", True))  # fmt: skip
    message("WriteRequest", ("timeseries", 1, f.TYPE_MESSAGE, ".test_prompb.TimeSeries", True))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("test_prompb.WriteRequest"))


WriteRequest = _write_request_class()

Decoded = dict[tuple[tuple[str, str], ...], tuple[float, int]]


def decode(body: bytes) -> Decoded:
    """A remote-write body as {sorted labels: (value, timestamp)}."""
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    result: Decoded = {}
    for series in request.timeseries:
        labels = tuple((label.name, label.value) for label in series.labels)
        (sample,) = series.samples
        result[labels] = (sample.value, sample.timestamp)
    return result


def value_of(decoded: Decoded, name: str, **labels: str) -> float:
    """The sum of the values of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, (value, _stamp) in decoded.items():
        as_dict = dict(key)
        if as_dict["__name__"] == name and all(as_dict.get(k) == v for k, v in labels.items()):
            total += value
    return total


# --- the wire format -------------------------------------------------------------------------


@pytest.mark.parametrize("use_cramjam", [True, False], ids=["cramjam", "literal-blocks"])
@pytest.mark.parametrize("size", [0, 1, 59, 60, 255, 256, 65535, 65536, 65537, 300_000])
def test_snappy_blocks_decode_with_an_independent_decoder(use_cramjam: bool, size: int) -> None:
    """Both snappy paths (cramjam, our literal blocks) decode back to the input at every
    literal-length boundary."""
    data = bytes((i * 7 + i // 256) % 256 for i in range(size))
    assert bytes(cramjam.snappy.decompress_raw(snappy_block(data, use_cramjam=use_cramjam))) == data


def test_write_request_decodes_with_the_protobuf_runtime() -> None:
    """Labels, doubles (NaN, inf, negative) and millisecond timestamps survive a decode."""
    series = [
        ((("__name__", "a_total"), ("route", "/ü/{id}")), 3.0, 1_700_000_000_123),
        ((("__name__", "b"),), -0.5, 1),
        ((("__name__", "c"), ("le", "+Inf")), math.inf, 2**40),
        ((("__name__", "d"),), math.nan, 5),
    ]
    decoded = decode(snappy_block(encode_write_request(series)))
    assert decoded[(("__name__", "a_total"), ("route", "/ü/{id}"))] == (3.0, 1_700_000_000_123)
    assert decoded[(("__name__", "b"),)] == (-0.5, 1)
    assert decoded[(("__name__", "c"), ("le", "+Inf"))] == (math.inf, 2**40)
    assert math.isnan(decoded[(("__name__", "d"),)][0])


def test_series_carry_the_name_constant_labels_and_sorted_labels() -> None:
    """Every series has ``__name__``, the constant labels unless its own, labels sorted."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    Counter("jobs", "J.", ["queue", "service"], registry=registry).labels("q", "own").inc(2)
    Histogram("lat_seconds", "L.", buckets=[1.0], registry=registry).observe(0.2)
    snapshot = Snapshot(tuple(registry.collect()), 1234, 0)
    series = write_request_series(snapshot, {"service": "svc", "environment": "prod"})
    by_name = {dict(labels)["__name__"]: (dict(labels), labels) for labels, _v, _t in series}
    assert set(by_name) == {"jobs_total", "lat_seconds_bucket", "lat_seconds_count",
                            "lat_seconds_sum"}  # fmt: skip
    assert by_name["jobs_total"][0]["service"] == "own"
    assert by_name["lat_seconds_sum"][0]["service"] == "svc"
    for _name, (_d, labels) in by_name.items():
        assert list(labels) == sorted(labels)
    assert {t for _l, _v, t in series} == {1234}


# --- a receiver that misbehaves on demand ----------------------------------------------------


class Receiver:
    """A loopback remote-write receiver: answers each request with the next scripted status
    (then ``default``), records headers and decoded bodies; ``hang`` never answers."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.default = 200
        self.retry_after: str | None = None
        self.hang = False
        self.released = threading.Event()
        self.requests: list[tuple[float, int, dict[str, str], Decoded]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.script.pop(0) if receiver.script else receiver.default
                receiver.requests.append(
                    (
                        time.monotonic(),
                        status,
                        {k.lower(): v for k, v in self.headers.items()},
                        decode(body),
                    )
                )
                if receiver.hang:
                    receiver.released.wait(30)
                    return
                self.send_response(status)
                if receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Length", "11")
                self.end_headers()
                self.wfile.write(b"bad sample\n")

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver()
    yield peer
    peer.close()


def telemetry_for(url: str, **entry: Any) -> Telemetry:
    exporter = {"type": "prometheus", "endpoint": url, "interval": "0.2s", "timeout": "0.5s",
                **entry}  # fmt: skip
    config = {"service": "rw", "environment": "test", "tracing": {"enabled": False},
              "logging": {"sinks": {"console": False}}, "store": {"enabled": False},
              "metrics": {"exporters": [exporter]}}  # fmt: skip
    return Telemetry(config=config, use_env=False, set_global=False,
                     capture_stdlib_logging=False)  # fmt: skip


def dropped(telemetry: Telemetry, reason: str) -> float:
    value = telemetry.registry.get_sample_value(
        "telemetry_metrics_dropped_total", {"exporter": "prometheus", "reason": reason,
                                            "service": "rw", "environment": "test"}
    )  # fmt: skip
    return value or 0.0


def test_request_headers_and_credentials(receiver: Receiver) -> None:
    """The spec's headers, a User-Agent, the configured headers and the bearer token are sent."""
    telemetry = telemetry_for(receiver.url, headers={"X-Scope-OrgID": "team-a"},
                              bearer_token="tok-secret")  # fmt: skip
    try:
        send_requests(telemetry, 3)
        telemetry.flush(2.0)
    finally:
        telemetry.shutdown(2.0)
    _at, _status, headers, body = receiver.requests[-1]
    assert headers["content-encoding"] == "snappy"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert headers["user-agent"].startswith("telemetry-web/")
    assert headers["x-scope-orgid"] == "team-a"
    assert headers["authorization"] == "Bearer tok-secret"
    assert value_of(body, "http_requests_total", route="<unmatched>", service="rw") == 3


def test_basic_auth(receiver: Receiver) -> None:
    """``basic_auth`` is sent as an Authorization: Basic header."""
    telemetry = telemetry_for(receiver.url, basic_auth={"username": "u", "password": "p"})
    try:
        telemetry.flush(2.0)
    finally:
        telemetry.shutdown(2.0)
    assert receiver.requests[-1][2]["authorization"] == "Basic dTpw"


def test_500_then_recovery(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    """5xx answers are retried with backoff and reported once; then the counts arrive."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    receiver.script = [500, 500, 503]
    telemetry = telemetry_for(receiver.url)
    try:
        send_requests(telemetry, 5)
        wait_until(lambda: any(status == 200 for _t, status, _h, _b in receiver.requests))
        send_requests(telemetry, 2)
        telemetry.flush(2.0)
        last = receiver.requests[-1][3]
        assert value_of(last, "http_requests_total") == 7
        lines = [r.getMessage() for r in caplog.records if "Metric export failed" in r.message]
        assert len(lines) == 1
        assert lines[0].startswith(f"Metric export failed: HTTP 500 (bad sample) to {receiver.url}")
        assert dropped(telemetry, "rejected") == 0
    finally:
        telemetry.shutdown(2.0)


def test_400_is_not_retried_and_counted_as_rejected(receiver: Receiver) -> None:
    """A 4xx is never retried: one attempt per interval, its samples counted as rejected."""
    receiver.default = 400
    telemetry = telemetry_for(receiver.url, interval="1s")
    try:
        send_requests(telemetry, 2)
        wait_until(lambda: len(receiver.requests) >= 1)
        time.sleep(0.6)  # backoff would have retried by now
        assert len(receiver.requests) == 1
        assert dropped(telemetry, "rejected") > 0
        assert dropped(telemetry, "export_failed") == 0
    finally:
        telemetry.shutdown(0.5)


def test_429_retry_after_is_honoured(receiver: Receiver) -> None:
    """A 429's Retry-After (1 s) spaces the attempts more than the first backoff would."""
    receiver.script = [429]
    receiver.retry_after = "1"
    telemetry = telemetry_for(receiver.url, interval="0.1s")
    try:
        wait_until(lambda: len(receiver.requests) >= 2)
        assert receiver.requests[1][0] - receiver.requests[0][0] >= 0.95
    finally:
        telemetry.shutdown(1.0)


def test_refused_endpoint_never_slows_requests(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listening: requests are not slowed, drops are counted, one line is logged."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    url = f"http://127.0.0.1:{free_port()}/api/v1/write"
    telemetry = telemetry_for(url, interval="0.05s")
    try:
        durations: list[float] = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            durations.extend(send_requests(telemetry, 20))
        assert_not_slowed(durations)
        assert dropped(telemetry, "export_failed") > 0
        output = telemetry._metric_outputs[0]
        assert output.pending_samples <= 200  # one snapshot, never a backlog
        lines = [r.getMessage() for r in caplog.records if "Metric export failed" in r.message]
        assert lines == [lines[0]]
        assert lines[0].startswith(f"Metric export failed: connection refused to {url}")
    finally:
        telemetry.shutdown(0.5)


def test_hanging_endpoint_never_slows_requests_and_shutdown_keeps_its_budget(
    receiver: Receiver,
) -> None:
    """A receiver that never answers: requests keep their speed; shutdown returns on time and
    counts the waiting snapshot as ``shutdown``."""
    receiver.hang = True
    telemetry = telemetry_for(receiver.url, timeout="5s")
    durations = send_requests(telemetry, 50)
    wait_until(lambda: len(receiver.requests) >= 1)
    durations += send_requests(telemetry, 50)
    assert_not_slowed(durations)
    started = time.monotonic()
    telemetry.shutdown(1.0)
    assert time.monotonic() - started < 1.5
    assert dropped(telemetry, "shutdown") > 0


# --- a real Prometheus -----------------------------------------------------------------------


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url
        self.write_url = f"{url}/api/v1/write"

    def query(self, expression: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10)
        answer.raise_for_status()
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def value(self, expression: str) -> float | None:
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    binary = require_tool("prometheus")
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [binary, "--web.enable-remote-write-receiver", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", f"--config.file={config}"],
        stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for_value(prometheus: Prometheus, expression: str, expected: float) -> None:
    deadline = time.monotonic() + 20
    while prometheus.value(expression) != expected:
        assert time.monotonic() < deadline, f"{expression} = {prometheus.value(expression)}"
        time.sleep(0.2)


@pytest.mark.server
def test_one_process_counts_are_exact_in_prometheus(prometheus: Prometheus) -> None:
    """N requests through the middleware: Prometheus stores exactly N, histograms as
    _bucket/_sum/_count with the service's labels, and the pushes are not rejected."""
    telemetry = telemetry_for(prometheus.write_url, interval="0.5s")
    try:
        send_requests(telemetry, 37, "/orders")
        wait_for_value(prometheus, 'http_requests_total{service="rw",environment="test"}', 37)
        count = 'http_request_duration_seconds_count{service="rw"}'
        assert prometheus.value(count) == 37
        assert prometheus.value('http_request_duration_seconds_bucket{le="+Inf"}') == 37
        assert prometheus.value("http_request_duration_seconds_sum") is not None
        send_requests(telemetry, 5, "/orders")
    finally:
        telemetry.shutdown(3.0)  # the final push carries the last 5
    assert prometheus.value("http_requests_total") == 42
    assert dropped(telemetry, "rejected") == dropped(telemetry, "export_failed") == 0


@pytest.mark.server
@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_two_workers_are_pushed_merged_once(
    prometheus: Prometheus, tmp_path: Path, server: str
) -> None:
    """Two workers: Prometheus gets the total of both, from one pusher (no pid label, one sample
    per interval rather than two)."""
    config = tmp_path / "telemetry.yaml"
    config.write_text(
        f"metrics:\n  exporters:\n    - type: prometheus\n"
        f"      endpoint: {prometheus.write_url}\n      interval: 1s\n"
    )
    port = free_port()
    if server == "uvicorn":
        args = ["uvicorn", "sample_apps.starlette_app:app", "--workers", "2",
                "--port", str(port), "--no-access-log"]  # fmt: skip
    else:
        args = ["gunicorn", "-c", "python:telemetry_web.gunicorn", "-w", "2",
                "-k", "uvicorn.workers.UvicornWorker", "--bind", f"127.0.0.1:{port}",
                "sample_apps.starlette_app:app"]  # fmt: skip
    route = 'http_requests_total{route="/api/users/{user_id:int}",status="200"}'
    with serve(
        args, port, env={"TELEMETRY_CONFIG": str(config), "TELEMETRY_STORE__ENABLED": "false"}
    ):
        limits = httpx.Limits(max_keepalive_connections=0)  # new connections: both workers
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
            for i in range(60):
                assert client.get(f"/api/users/{1 + i % 2}").status_code == 200
        wait_for_value(prometheus, f"sum({route})", 60)
        series = prometheus.query(route)
        assert all("pid" not in s["metric"] for s in series)
        started = time.monotonic()
        time.sleep(4)
        window = int(time.monotonic() - started) + 1
        samples = prometheus.value(f"max(count_over_time({route}[{window}s]))")
        assert samples is not None
        assert samples <= window + 1  # one pusher at 1 s: not two samples per interval
        assert prometheus.value(f"sum({route})") == 60
