"""Datadog output: requests checked against the metrics API v2 schema by a loopback receiver.

The receiver gunzips each request and validates it with ``jsonschema`` (an independent
validator) against ``SERIES_SCHEMA`` below, written from Datadog's public API documentation
("Submit metrics", ``POST /api/v2/series``: ``MetricPayload``, ``MetricSeries``,
``MetricPoint``, ``MetricResource``, ``MetricIntakeType``; payload limits 500 KB compressed,
5 MB decompressed; timestamps at most 10 minutes ahead and 1 hour old), not from our code. It
answers 202 ``{"errors": []}`` as Datadog does, 403 to a wrong ``DD-API-KEY``, and 400 to a
request the schema refuses. Counts are the sum of the ``count`` points it accepted.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from telemetry_web import Telemetry
from telemetry_web.config import parse_settings
from telemetry_web.config._model import DATADOG_SITES
from telemetry_web.errors import ConfigError
from telemetry_web.metrics.outputs import DatadogOutput, ExportError, Snapshot
from telemetry_web.metrics.outputs._datadog import series_url

from .._net import free_port
from .._requests import send_requests
from .._timing import assert_not_slowed
from .._waiting import wait_until
from ..servers.conftest import serve

KEY = "dd-0123456789abcdef0123456789abcdef"

# Written from https://docs.datadoghq.com/api/latest/metrics/#submit-metrics (v2).
SERIES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["series"],
    "additionalProperties": False,
    "properties": {
        "series": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["metric", "points"],
                "additionalProperties": False,
                "properties": {
                    "metric": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 200,
                        "pattern": "^[A-Za-z][A-Za-z0-9_.]*$",
                    },
                    "type": {"type": "integer", "enum": [0, 1, 2, 3]},
                    "interval": {"type": "integer", "minimum": 1},
                    "points": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["timestamp", "value"],
                            "properties": {
                                "timestamp": {"type": "integer"},
                                "value": {"type": "number"},
                            },
                        },
                    },
                    "tags": {"type": "array", "items": {"type": "string", "pattern": ".+:.*"}},
                    "resources": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "type": {"type": "string"}},
                        },
                    },
                    "unit": {"type": "string"},
                    "source_type_name": {"type": "string"},
                    "metadata": {"type": "object"},
                },
                # "If the type of the metric is rate or count, define the corresponding interval."
                "if": {"properties": {"type": {"enum": [1, 2]}}, "required": ["type"]},
                "then": {"required": ["interval"]},
            },
        }
    },
}
VALIDATOR = jsonschema.Draft202012Validator(SERIES_SCHEMA)
MAX_COMPRESSED, MAX_DECOMPRESSED = 512_000, 5_242_880


class Receiver:
    """A loopback ``/api/v2/series``: checks headers, limits and schema; answers the next
    scripted status (then 202); records every request, valid or not; ``hang`` never answers."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.hang = False
        self.echo_key = False  # put the received key in an error body (a careless proxy)
        self.released = threading.Event()
        self.requests: list[dict[str, Any]] = []
        self.invalid: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                status, problem, payload = receiver.check(self.path, self.headers, raw)
                if status == 202 and receiver.script:
                    status = receiver.script.pop(0)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.requests.append({"at": time.monotonic(), "status": status,
                                          "headers": headers, "compressed": len(raw),
                                          "payload": payload})  # fmt: skip
                if problem:
                    receiver.invalid.append(problem)
                if receiver.hang:
                    receiver.released.wait(30)
                    return
                body = {"errors": [problem or "Forbidden" if status == 403 else "Unavailable"]}
                if status == 202:
                    body = {"errors": []}
                elif receiver.echo_key:
                    body = {"errors": [f"bad request for key {self.headers['DD-API-KEY']}"]}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2/series"

    def check(self, path: str, headers: Any, raw: bytes) -> tuple[int, str | None, Any]:
        if headers.get("DD-API-KEY") != KEY:
            return 403, None, None
        if path != "/api/v2/series":
            return 404, f"path {path}", None
        if headers.get("Content-Encoding") != "gzip":
            return 400, "not gzip", None
        if headers.get("Content-Type") != "application/json":
            return 400, f"content type {headers.get('Content-Type')}", None
        if len(raw) > MAX_COMPRESSED:
            return 413, f"{len(raw)} bytes compressed", None
        data = gzip.decompress(raw)
        if len(data) > MAX_DECOMPRESSED:
            return 413, f"{len(data)} bytes decompressed", None
        payload = json.loads(data)
        errors = [e.message for e in VALIDATOR.iter_errors(payload)]
        now = time.time()
        for series in payload.get("series", []):
            for point in series.get("points", []):
                if not now - 3600 <= point.get("timestamp", 0) <= now + 600:
                    errors.append(f"timestamp {point.get('timestamp')} out of range")
        if errors:
            return 400, "; ".join(errors[:3]), payload
        return 202, None, payload

    def accepted(self) -> list[dict[str, Any]]:
        return [r["payload"] for r in self.requests if r["status"] == 202]

    def series(self, metric: str, **tags: str) -> list[dict[str, Any]]:
        """Every accepted series named ``metric`` carrying ``tags``."""
        wanted = {f"{k}:{v}" for k, v in tags.items()}
        return [s for p in self.accepted() for s in p["series"]
                if s["metric"] == metric and wanted <= set(s.get("tags", []))]  # fmt: skip

    def total(self, metric: str, **tags: str) -> float:
        """The sum of the accepted ``count`` points of ``metric`` with ``tags``."""
        found = self.series(metric, **tags)
        assert all(s["type"] == 1 for s in found)
        total: float = sum(p["value"] for s in found for p in s["points"])
        return total

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
    exporter = {"type": "datadog", "api_key": KEY, "endpoint": url, "interval": "0.2s",
                "timeout": "0.5s", **entry}  # fmt: skip
    config = {"service": "dd", "environment": "test", "tracing": {"enabled": False},
              "logging": {"sinks": {"console": False}}, "store": {"enabled": False},
              "metrics": {"exporters": [exporter]}}  # fmt: skip
    return Telemetry(config=config, use_env=False, set_global=False,
                     capture_stdlib_logging=False)  # fmt: skip


def dropped(telemetry: Telemetry, reason: str) -> float:
    value = telemetry.registry.get_sample_value(
        "telemetry_metrics_dropped_total",
        {"exporter": "datadog", "reason": reason, "service": "dd", "environment": "test"},
    )
    return value or 0.0


class Dropped:
    """telemetry_metrics_dropped_total for outputs built by hand: counts per reason."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def labels(self, _exporter: str, reason: str) -> Any:
        counts = self.counts

        class Child:
            def inc(self, amount: float = 1) -> None:
                counts[reason] = counts.get(reason, 0) + amount

        return Child()


def output_for(url: str | None, registry: CollectorRegistry, **kwargs: Any) -> DatadogOutput:
    """A Datadog output built by hand over ``registry``, pushing only when flushed."""
    options = {"name": "datadog", "interval": 3600.0, "timeout": 2.0, "source": registry,
               "dropped": Dropped(), "endpoint": url, **kwargs}  # fmt: skip
    return DatadogOutput(KEY, **options)


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "url"),
    [
        ("datadoghq.com", "https://api.datadoghq.com/api/v2/series"),
        ("datadoghq.eu", "https://api.datadoghq.eu/api/v2/series"),
        ("us3.datadoghq.com", "https://api.us3.datadoghq.com/api/v2/series"),
        ("us5.datadoghq.com", "https://api.us5.datadoghq.com/api/v2/series"),
        ("ap1.datadoghq.com", "https://api.ap1.datadoghq.com/api/v2/series"),
        ("ap2.datadoghq.com", "https://api.ap2.datadoghq.com/api/v2/series"),
        ("ddog-gov.com", "https://api.ddog-gov.com/api/v2/series"),
    ],
)
def test_each_site_has_its_series_endpoint(site: str, url: str) -> None:
    """Every documented site is accepted and sends to ``https://api.<site>/api/v2/series``."""
    entries = [{"datadog": {"api_key": KEY, "site": site}}]
    settings = parse_settings({"metrics": {"exporters": entries}})
    (entry,) = settings.metrics.exporters
    assert entry.site == site
    assert series_url(entry.site) == url
    assert output_for(None, CollectorRegistry(), site=site).where == url
    assert site in DATADOG_SITES


def test_default_site_and_interval() -> None:
    """Without ``site`` the US1 site (datadoghq.com) is used, every 15 s."""
    entries = [{"type": "datadog", "api_key": KEY}]
    (entry,) = parse_settings({"metrics": {"exporters": entries}}).metrics.exporters
    assert (entry.site, entry.interval, entry.endpoint) == ("datadoghq.com", 15.0, None)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        pytest.param(
            {"type": "datadog", "api_key": KEY, "site": "datadoghq.co"},
            "metrics.exporters[0].site: expected one of 'datadoghq.com', 'datadoghq.eu', "
            "'us3.datadoghq.com', 'us5.datadoghq.com', 'ap1.datadoghq.com', "
            "'ap2.datadoghq.com', 'ddog-gov.com' (did you mean 'datadoghq.com'?), "
            "got 'datadoghq.co'",
            id="unknown-site",
        ),
        pytest.param(
            {"type": "datadog", "site": "datadoghq.eu"},
            "metrics.exporters[0].api_key: required for type 'datadog'",
            id="missing-api-key",
        ),
        pytest.param(
            {"type": "datadog", "api_key": ""},
            "metrics.exporters[0].api_key: required for type 'datadog'",
            id="empty-api-key",
        ),
        pytest.param(
            {"type": "datadog", "api_key": [KEY]},
            "metrics.exporters[0].api_key: expected a string, got '***'",
            id="api-key-not-shown",
        ),
        pytest.param(
            {"type": "datadog", "api_key": KEY, "endpoint": "intake:8080"},
            "metrics.exporters[0].endpoint: expected a URL such as "
            "'http://prometheus:9090/api/v1/write', got 'intake:8080'",
            id="endpoint-not-a-url",
        ),
        pytest.param(
            {"type": "datadog", "api_key": KEY, "bearer_token": "t"},
            "metrics.exporters[0].bearer_token: not used by type 'datadog' (used by 'prometheus')",
            id="key-of-another-type",
        ),
    ],
)
def test_bad_datadog_entries_are_config_errors(entry: dict[str, Any], problem: str) -> None:
    """An unknown site, a missing key, a bad endpoint: a ConfigError naming the key path (and
    the allowed sites), never showing the key."""
    with pytest.raises(ConfigError) as info:
        Telemetry(config={"metrics": {"exporters": [entry]}}, use_env=False)
    assert info.value.problems == [problem]
    assert KEY not in str(info.value)


# --- the request -----------------------------------------------------------------------------


def test_request_matches_the_v2_schema_with_counts_gauges_and_histograms(
    receiver: Receiver,
) -> None:
    """One push: gzip JSON valid against the schema, the key in DD-API-KEY, counters and
    histogram parts as counts with an interval, gauges as gauges, tags and the host resource."""
    registry = CollectorRegistry()
    Counter("jobs", "J.", ["queue"], registry=registry).labels("mail").inc(3)
    Gauge("depth", "D.", registry=registry).set(7.5)
    Gauge("broken", "B.", registry=registry).set(float("nan"))
    Histogram("work_seconds", "W.", buckets=[0.5, 1.0], registry=registry).observe(0.7)
    output = output_for(receiver.url, registry, interval=10.0, hostname="web-1",
                        constant_labels={"service": "dd", "environment": "test"})  # fmt: skip
    try:
        assert output.flush(5.0)
    finally:
        output.shutdown(1.0)
    assert receiver.invalid == []
    request = receiver.requests[0]  # the flush (shutdown pushes once more)
    assert [r["status"] for r in receiver.requests] == [202, 202]
    assert request["headers"]["dd-api-key"] == KEY
    assert request["headers"]["content-encoding"] == "gzip"
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["user-agent"].startswith("telemetry-web/")
    by_key = {(s["metric"], tuple(s["tags"])): s for s in request["payload"]["series"]}
    base = ("environment:test", "service:dd")
    jobs = by_key[("jobs_total", ("environment:test", "queue:mail", "service:dd"))]
    assert jobs["type"] == 1
    assert jobs["interval"] == 10
    assert jobs["points"][0]["value"] == 3.0
    assert abs(jobs["points"][0]["timestamp"] - time.time()) < 10
    assert jobs["resources"] == [{"type": "host", "name": "web-1"}]
    assert by_key[("depth", base)]["type"] == 3
    assert by_key[("depth", base)]["points"][0]["value"] == 7.5
    assert "interval" not in by_key[("depth", base)]
    assert not any(metric == "broken" for metric, _tags in by_key)  # NaN: left out
    buckets = {tags: s["points"][0]["value"] for (metric, tags), s in by_key.items()
               if metric == "work_seconds_bucket"}  # fmt: skip
    assert buckets == {(*base, "upper_bound:0.5"): 0.0, (*base, "upper_bound:1.0"): 1.0,
                       (*base, "upper_bound:+Inf"): 1.0}  # fmt: skip
    assert by_key[("work_seconds_count", base)]["points"][0]["value"] == 1.0
    assert by_key[("work_seconds_sum", base)]["points"][0]["value"] == 0.7
    assert all(s["type"] == 1 for (m, _t), s in by_key.items() if m.startswith("work_seconds"))


def test_counts_are_deltas_and_a_reset_counts_from_zero(receiver: Receiver) -> None:
    """Each push sends the increase since the last accepted one; a counter that went down
    (a restarted process) sends its new value."""
    registry = CollectorRegistry()
    jobs = Counter("jobs", "J.", registry=registry)
    output = output_for(receiver.url, registry)
    try:
        jobs.inc(5)
        output.flush(5.0)
        output.flush(5.0)
        jobs.inc(2)
        output.flush(5.0)
        registry.unregister(jobs)
        Counter("jobs", "J.", registry=registry).inc(1)  # a fresh process: 1 < 7
        output.flush(5.0)
    finally:
        output.shutdown(1.0)
    values = [s["points"][0]["value"] for s in receiver.series("jobs_total")]
    assert values == [5.0, 0.0, 2.0, 1.0, 0.0]  # the last one: shutdown's final push
    assert receiver.total("jobs_total") == 8


@pytest.mark.parametrize(
    ("limits", "series"),
    [
        pytest.param({"MAX_UNCOMPRESSED": 4_000}, 300, id="uncompressed-limit"),
        pytest.param({"MAX_COMPRESSED": 1_500}, 300, id="compressed-limit"),
        pytest.param({}, 30_000, id="documented-limits"),
    ],
)
def test_batches_stay_under_the_limits(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, limits: dict[str, int], series: int
) -> None:
    """A registry bigger than one request allows is split: every request within the limits
    and the schema, every series sent exactly once."""
    for name, value in limits.items():
        monkeypatch.setattr(DatadogOutput, name, value)
    registry = CollectorRegistry()
    counter = Counter("items", "I.", ["id", "padding"], registry=registry)
    for i in range(series):
        counter.labels(str(i), f"{i:x}" * 12).inc(i + 1)
    output = output_for(receiver.url, registry, timeout=60.0)
    try:
        assert output.flush(60.0)
        sent = len(receiver.requests)
    finally:
        output.shutdown(30.0)
    del receiver.requests[sent:]  # shutdown's final push, all zeros
    assert receiver.invalid == []
    assert len(receiver.requests) > 1
    compressed_limit = limits.get("MAX_COMPRESSED", MAX_COMPRESSED)
    uncompressed_limit = limits.get("MAX_UNCOMPRESSED", MAX_DECOMPRESSED)
    for request in receiver.requests:
        assert request["compressed"] <= compressed_limit
        raw = json.dumps(request["payload"], separators=(",", ":"))
        assert len(raw.encode()) <= uncompressed_limit
    ids = [t for s in receiver.series("items_total") for t in s["tags"] if t.startswith("id:")]
    assert len(ids) == len(set(ids)) == series
    assert receiver.total("items_total") == series * (series + 1) / 2


def test_a_batch_failing_midway_is_retried_without_double_counting(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 1 accepted, batch 2 answered 500: the retry sends batch 1's series again with
    nothing new, so the totals are exact."""
    monkeypatch.setattr(DatadogOutput, "MAX_UNCOMPRESSED", 3_000)
    monkeypatch.setattr(DatadogOutput, "FIRST_BACKOFF", 0.05)
    registry = CollectorRegistry()
    counter = Counter("items", "I.", ["id"], registry=registry)
    for i in range(100):
        counter.labels(str(i)).inc(2)
    receiver.script = [202, 500]
    output = output_for(receiver.url, registry)
    output.start()
    try:
        output.flush(5.0)
        wait_until(lambda: len(receiver.requests) > 3 and receiver.requests[-1]["status"] == 202
                   and receiver.total("items_total") == 200)  # fmt: skip
        output.flush(5.0)
    finally:
        output.shutdown(1.0)
    assert [r["status"] for r in receiver.requests[:2]] == [202, 500]
    assert receiver.total("items_total") == 200
    assert receiver.invalid == []


# --- through the middleware ------------------------------------------------------------------


def test_exact_counts_after_requests_through_the_middleware(receiver: Receiver) -> None:
    """N requests through TelemetryMiddleware: the accepted counts add up to exactly N, the
    histogram's count and +Inf bucket too; the final push at shutdown carries the rest."""
    telemetry = telemetry_for(receiver.url, interval="0.3s")
    try:
        send_requests(telemetry, 37)
        wait_until(lambda: receiver.total("http_requests_total", route="<unmatched>") == 37)
        send_requests(telemetry, 5)
    finally:
        telemetry.shutdown(3.0)
    tags = {"route": "<unmatched>", "service": "dd", "environment": "test"}
    assert receiver.total("http_requests_total", **tags, status="200", method="GET") == 42
    assert receiver.total("http_request_duration_seconds_count", **tags) == 42
    assert receiver.total("http_request_duration_seconds_bucket", upper_bound="+Inf") == 42
    assert len(receiver.accepted()) >= 2
    assert receiver.invalid == []
    assert dropped(telemetry, "rejected") == dropped(telemetry, "export_failed") == 0


def test_500_then_recovery_counts_once(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """5xx answers are retried with backoff, reported in one line; the counts arrive once."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    receiver.script = [500, 500, 503]
    telemetry = telemetry_for(receiver.url)
    try:
        send_requests(telemetry, 5)
        wait_until(lambda: any(r["status"] == 202 for r in receiver.requests))
        send_requests(telemetry, 2)
        telemetry.flush(2.0)
    finally:
        telemetry.shutdown(2.0)
    assert receiver.total("http_requests_total") == 7
    lines = [r.getMessage() for r in caplog.records if "Metric export failed" in r.message]
    assert len(lines) == 1
    assert lines[0].startswith(
        f'Metric export failed: HTTP 500 ({{"errors": ["Unavailable"]}}) to {receiver.url}'
    )


def test_403_is_one_clear_line_without_the_key(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused key: not retried, counted as rejected, one line naming api_key and site; the
    key is in no log record (any level), exception, repr or the configuration's repr."""
    caplog.set_level(logging.DEBUG)
    telemetry = telemetry_for(receiver.url, api_key="dd-wrong-key-0000000000000000", interval="1s")
    wrong = "dd-wrong-key-0000000000000000"
    try:
        send_requests(telemetry, 3)
        wait_until(lambda: len(receiver.requests) >= 1)
        time.sleep(0.5)  # a retry would have come by now
        assert len(receiver.requests) == 1
        assert receiver.requests[0]["status"] == 403
        assert dropped(telemetry, "rejected") > 0
        output = telemetry._metric_outputs[0]
        texts = [repr(output), output.describe_endpoint(), repr(telemetry.settings)]
    finally:
        telemetry.shutdown(1.0)
    lines = [r.getMessage() for r in caplog.records if "Metric export failed" in r.message]
    assert len(lines) == 1
    assert lines[0].startswith(
        "Metric export failed: HTTP 403: the API key was refused (check the exporter's api_key "
        f"and site) to {receiver.url}"
    )
    everything = [r.getMessage() for r in caplog.records] + texts
    everything += [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert not [text for text in everything if wrong in text]


def test_an_error_body_echoing_the_key_is_masked(receiver: Receiver) -> None:
    """A proxy echoing the key in its error body: the exception text shows ``<api_key>``."""
    receiver.echo_key = True
    receiver.script = [500]
    registry = CollectorRegistry()
    Counter("jobs", "J.", registry=registry).inc()
    output = output_for(receiver.url, registry)
    try:
        snapshot = Snapshot(tuple(registry.collect()), int(time.time() * 1000), 1)
        with pytest.raises(ExportError) as info:
            output.export(snapshot, 2.0)
    finally:
        output.shutdown(1.0)
    assert KEY not in str(info.value)
    assert str(info.value) == 'HTTP 500 ({"errors": ["bad request for key <api_key>"]})'
    assert info.value.retry


def test_refused_endpoint_never_slows_requests(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listening: requests keep their speed, drops are counted, one line is logged."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    url = f"http://127.0.0.1:{free_port()}/api/v2/series"
    telemetry = telemetry_for(url, interval="0.05s")
    try:
        durations: list[float] = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            durations.extend(send_requests(telemetry, 20))
        assert_not_slowed(durations)
        assert dropped(telemetry, "export_failed") > 0
        assert telemetry._metric_outputs[0].pending_samples <= 200
    finally:
        telemetry.shutdown(0.5)
    lines = [r.getMessage() for r in caplog.records if "Metric export failed" in r.message]
    assert lines == [lines[0]]
    assert lines[0].startswith(f"Metric export failed: connection refused to {url}")


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


# --- several workers -------------------------------------------------------------------------


def test_a_pusher_taking_over_starts_from_the_last_sent_state(
    receiver: Receiver, tmp_path: Path
) -> None:
    """Two outputs over one multiprocess directory: one holds the push lock; when it stops,
    the other pushes, starting from the state file, so each increase is counted once."""
    registry = CollectorRegistry()
    jobs = Counter("jobs", "J.", registry=registry)
    first = output_for(receiver.url, registry, shared_dir=str(tmp_path))
    second = output_for(receiver.url, registry, shared_dir=str(tmp_path))
    try:
        jobs.inc(10)
        first.flush(5.0)
        second.flush(5.0)  # the lock is the first's: nothing sent
        assert len(receiver.requests) == 1
        jobs.inc(4)
        first.flush(5.0)
        jobs.inc(3)
        first.shutdown(2.0)  # the final push carries the 3, then the lock is free
        jobs.inc(6)
        second.flush(5.0)
        second.flush(5.0)
    finally:
        first.shutdown(1.0)
        second.shutdown(1.0)
    assert [s["points"][0]["value"] for s in receiver.series("jobs_total")] == [10, 4, 3, 6, 0, 0]
    assert receiver.total("jobs_total") == 23
    state = json.loads((tmp_path / ".telemetry-web-push-datadog.state.json").read_text())
    assert KEY not in json.dumps(state)
    assert ["jobs_total", [], 23.0] in state["series"]


def _lock_holder(lock: Path) -> int | None:
    """The pid holding a flock on ``lock``, from /proc/locks."""
    inode = os.stat(lock).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and fields[-3].endswith(f":{inode}"):
            return int(fields[-4])
    return None


@pytest.mark.server
def test_two_gunicorn_workers_push_merged_once_and_a_killed_pusher_is_replaced(
    receiver: Receiver, tmp_path: Path
) -> None:
    """Two workers: the accepted counts are exactly the requests served (one pusher, merged
    values); after the pusher is SIGKILLed another worker takes over from its state and the
    totals stay exact."""
    shared = tmp_path / "multiproc"
    shared.mkdir()
    config = tmp_path / "telemetry.yaml"
    config.write_text(
        "metrics:\n  exporters:\n    - type: datadog\n"
        f"      api_key: {KEY}\n      endpoint: {receiver.url}\n      interval: 0.5s\n"
    )
    port = free_port()
    args = ["gunicorn", "-c", "python:telemetry_web.gunicorn", "-w", "2",
            "-k", "uvicorn.workers.UvicornWorker", "--bind", f"127.0.0.1:{port}",
            "sample_apps.starlette_app:app"]  # fmt: skip
    env = {"TELEMETRY_CONFIG": str(config), "TELEMETRY_STORE__ENABLED": "false",
           "PROMETHEUS_MULTIPROC_DIR": str(shared)}  # fmt: skip
    route = {"route": "/api/users/{user_id:int}", "status": "200"}
    lock = shared / ".telemetry-web-push-datadog.lock"

    def get(count: int) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)  # new connections: both workers
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
            for i in range(count):
                assert client.get(f"/api/users/{1 + i % 2}").status_code == 200

    with serve(args, port, env=env):
        get(60)
        wait_until(lambda: receiver.total("http_requests_total", **route) == 60, 20)
        time.sleep(2)  # four more intervals: still 60 (no second pusher, no double count)
        assert receiver.total("http_requests_total", **route) == 60
        window = [r for r in receiver.requests if r["at"] > time.monotonic() - 2]
        assert len(window) <= 6  # one pusher at 0.5 s, not two
        pusher = _lock_holder(lock)
        assert pusher is not None
        os.kill(pusher, signal.SIGKILL)
        wait_until(lambda: _lock_holder(lock) not in (None, pusher), 30)
        get(20)
        wait_until(lambda: receiver.total("http_requests_total", **route) == 80, 20)
        time.sleep(1.5)
        assert receiver.total("http_requests_total", **route) == 80
    assert receiver.invalid == []
    served = receiver.series("http_requests_total", **route)
    assert served
    assert not [s for s in served if any(t.startswith("pid:") for t in s["tags"])]  # merged
