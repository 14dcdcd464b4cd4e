"""The OTLP log sink against loopback receivers that decode with ``opentelemetry-proto``
(``tests/tracing/_receivers.py``: HTTP/protobuf ``/v1/logs`` and a real ``grpcio``
``LogsService``): records linked to the exported spans, severity, attributes, resource; and
faults: refused, 503 with ``Retry-After``, 400 rejected, partial success, hanging, recovery."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware, __version__
from telemetry_web.errors import ConfigError, MissingExtraError
from telemetry_web.logging._otlp import OtlpLogSink

from .._net import free_port
from .._timing import assert_not_slowed
from ..tracing._receivers import (
    OtlpGrpcLogsReceiver,
    OtlpLogsReceiver,
    OtlpReceiver,
    attributes,
)
from ..tracing._support import call
from .conftest import ENVIRONMENT, SERVICE, MakeTelemetry, dropped

FAST = {"flush_interval": "50ms", "backoff": "200ms", "max_backoff": "400ms", "timeout": "500ms"}
REQUESTS = 6


def flushed(telemetry: Telemetry) -> bool:
    """Spans exported and log lines delivered by every sink (False: some still waiting)."""
    telemetry.flush(timeout=5)
    assert telemetry.pipeline is not None
    return telemetry.pipeline.flush(5)


def failure_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Log shipping failed: otlp" in line]


def otlp_config(endpoint: str, **sink: Any) -> dict[str, Any]:
    return {"logging": {"request_log": False,
                        "sinks": {"otlp": {"endpoint": endpoint, **FAST, **sink}}}}  # fmt: skip


def numbers(records: list[tuple[dict[str, Any], Any, Any]]) -> list[int]:
    return [attributes(record.attributes)["n"] for _resource, _scope, record in records]


def orders_app(telemetry: Telemetry) -> Any:
    """``GET /items/{id}``: one line through the telemetry logger (a credential in a field, a
    bearer token in another, nested values), one through the standard library, then ``ok``."""
    log = telemetry.get_logger("tests.orders")
    stdlib = logging.getLogger("tests.orders.stdlib")

    async def item(request: Request) -> PlainTextResponse:
        log.info(
            "loaded",
            item=int(request.path_params["id"]),
            password="hunter2",
            note="Authorization: Bearer abc.def.ghi",
            nested={"a": {"b": 1}, "gone": None},
            tags=["x", "y"],
            ratio=0.5,
            ok=True,
        )
        stdlib.warning("stock low for %s", request.path_params["id"])
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/items/{id}", item)])
    return TelemetryMiddleware(app, telemetry=telemetry)


@pytest.fixture
def traced() -> Iterator[Any]:
    """``traced(logs_sink)``: a Telemetry exporting spans to a loopback OTLP receiver and logs
    through the OTLP sink configured as ``logs_sink``; shut down after the test."""
    made: list[Telemetry] = []
    with OtlpReceiver() as spans:

        def factory(sink: dict[str, Any]) -> tuple[Telemetry, OtlpReceiver]:
            telemetry = Telemetry(
                {
                    "service": "orders",
                    "environment": "prod",
                    "tracing": {
                        "sampling": "always_on",
                        "exporters": {"otlp": {"endpoint": f"http://127.0.0.1:{spans.port}"}},
                        "resource_attributes": {"service.version": "1.4.2"},
                    },
                    "logging": {"level": "info", "sinks": {"console": False, "otlp": sink}},
                    # No local store: it would be the working directory's (the repository's).
                    "store": {"enabled": False},
                },
                use_env=False,
                set_global=False,
            )
            made.append(telemetry)
            return telemetry, spans

        yield factory
        for telemetry in made:
            telemetry.shutdown(timeout=1.0)


def drive_requests(telemetry: Telemetry, count: int = REQUESTS) -> list[float]:
    """``count`` requests through the middleware (``/items/0`` ...); each one's duration."""
    app = orders_app(telemetry)

    async def run() -> list[float]:
        durations = []
        for n in range(count):
            started = time.perf_counter()
            assert await call(app, f"/items/{n}") == 200
            durations.append(time.perf_counter() - started)
        return durations

    return asyncio.run(run())


def check_linked_records(
    records: list[tuple[dict[str, Any], Any, Any]], spans: list[tuple[dict[str, Any], Any]]
) -> None:
    """Per request: one request record, one ``loaded`` line and one stdlib line, all three with
    the trace and span ids of that request's exported server span, on the spans' resource."""
    servers = {(s.trace_id, s.span_id): s for _r, s in spans if s.name == "GET /items/{id}"}
    assert len(servers) == REQUESTS
    span_resources = {tuple(sorted(r.items())) for r, _s in spans}
    assert len(span_resources) == 1
    by_body: dict[str, list[Any]] = {}
    for resource, scope, record in records:
        assert tuple(sorted(resource.items())) in span_resources
        assert (scope.name, scope.version) == ("telemetry_web", __version__)
        by_body.setdefault(record.body.string_value, []).append(record)
    requests, loaded = by_body.pop("request"), by_body.pop("loaded")
    assert sorted(by_body) == [f"stock low for {n}" for n in range(REQUESTS)]
    stdlib = [record for found in by_body.values() for record in found]
    assert (len(requests), len(loaded), len(stdlib)) == (REQUESTS, REQUESTS, REQUESTS)
    assert {(r.trace_id, r.span_id) for r in requests} == set(servers)
    assert {(r.trace_id, r.span_id) for r in loaded} == set(servers)
    assert {(r.trace_id, r.span_id) for r in stdlib} == set(servers)
    for record in requests:
        fields = attributes(record.attributes)
        path = fields.pop("path")
        n = int(path.rsplit("/", 1)[1])
        assert isinstance(fields.pop("duration_ms"), float)
        assert len(fields.pop("request_id")) == 32
        assert fields == {"logger": "telemetry_web.request", "method": "GET",
                          "route": "/items/{id}", "status": 200, "client": "127.0.0.1"}  # fmt: skip
        assert (record.severity_number, record.severity_text) == (9, "INFO")
        server = servers[(record.trace_id, record.span_id)]
        assert attributes(server.attributes)["url.path"] == f"/items/{n}"
        # the event's millisecond timestamp, taken as the request ended
        assert server.start_time_unix_nano // 10**6 <= record.time_unix_nano // 10**6
        assert record.time_unix_nano % 10**6 == 0
        assert record.observed_time_unix_nano >= record.time_unix_nano
    for record in loaded:
        fields = attributes(record.attributes)
        assert 0 <= fields.pop("item") < REQUESTS
        assert "request_id" in fields
        assert fields.pop("route") == "/items/{id}"
        fields.pop("request_id")
        assert fields == {
            "logger": "tests.orders",
            "password": "REDACTED",  # the redact processor ran before the sink
            "note": "Authorization: REDACTED REDACTED",  # the scheme and the credential
            "nested": {"a": {"b": 1}},
            "tags": ("x", "y"),
            "ratio": 0.5,
            "ok": True,
        }
        assert (record.severity_number, record.severity_text) == (9, "INFO")
    for record in stdlib:
        assert (record.severity_number, record.severity_text) == (13, "WARNING")
        assert attributes(record.attributes)["logger"] == "tests.orders.stdlib"


def test_requests_give_records_linked_to_their_spans_over_http(
    traced: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """N requests through TelemetryMiddleware give N request records (and the lines logged in
    them) carrying the exported server spans' trace and span ids, severity, attributes, the
    spans' resource and the ``telemetry_web`` scope; secrets are redacted before the sink."""
    with OtlpLogsReceiver() as receiver:
        telemetry, spans = traced({"endpoint": f"http://127.0.0.1:{receiver.port}", **FAST})
        drive_requests(telemetry)
        assert flushed(telemetry)
        records = receiver.records()
        headers = receiver.headers[0]
    check_linked_records(records, spans.spans())
    assert headers["content-type"] == "application/x-protobuf"
    assert "hunter2" not in capsys.readouterr().err


def test_requests_give_records_linked_to_their_spans_over_grpc(traced: Any) -> None:
    """The same over gRPC (``LogsService/Export`` on a real grpcio server), with the configured
    headers as call metadata."""
    with OtlpGrpcLogsReceiver() as receiver:
        sink = {"endpoint": receiver.url, "protocol": "grpc", "headers": {"X-Tenant": "acme"}}
        telemetry, spans = traced({**sink, **FAST})
        drive_requests(telemetry)
        assert flushed(telemetry)
        records = receiver.records()
        metadata = receiver.calls[0][2]
    check_linked_records(records, spans.spans())
    assert metadata["x-tenant"] == "acme"


def test_fields_become_attributes_and_records(make_telemetry: MakeTelemetry) -> None:
    """Levels map to severities, the exception to OpenTelemetry's ``exception.*`` attributes,
    values to their AnyValue kinds; ``service``/``environment`` stay on the resource; a line
    logged outside any span has no ids."""
    with OtlpLogsReceiver() as receiver:
        tel = make_telemetry(**otlp_config(f"http://127.0.0.1:{receiver.port}"), log_sinks=[])
        log = tel.get_logger("tests.kinds")
        tel.log_levels.configure("debug", {})
        log.debug("d", big=2**70, raw=b"\x00\x01", empty=None)
        log.warning("w")
        log.error("e", request_id="r-1")
        log.critical("c")
        try:
            raise ValueError("no such order")
        except ValueError:
            log.exception("failed")
        assert flushed(tel)
        records = [record for _res, _scope, record in receiver.records()]
        (resource,) = {tuple(sorted(r.items())) for r, _s, _rec in receiver.records()}
    severities = [(r.body.string_value, r.severity_number, r.severity_text) for r in records]
    assert severities == [("d", 5, "DEBUG"), ("w", 13, "WARNING"), ("e", 17, "ERROR"),
                          ("c", 21, "CRITICAL"), ("failed", 17, "ERROR")]  # fmt: skip
    assert all(r.trace_id == b"" and r.span_id == b"" for r in records)
    assert attributes(records[0].attributes) == {
        "logger": "tests.kinds",
        "big": str(2**70),
        "raw": b"\x00\x01",
    }
    assert attributes(records[2].attributes) == {"logger": "tests.kinds", "request_id": "r-1"}
    failed = attributes(records[4].attributes)
    assert failed["exception.type"] == "ValueError"
    assert failed["exception.message"] == "no such order"
    assert "raise ValueError" in failed["exception.stacktrace"]
    assert dict(resource)["service.name"] == SERVICE
    assert dict(resource)["deployment.environment"] == ENVIRONMENT


# --- faults -------------------------------------------------------------------------------------


def test_refused_then_recovery_one_line_per_period(
    make_telemetry: MakeTelemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the Collector refusing connections, logging stays fast, records past
    ``max_buffer`` are counted as ``buffer_full`` and stderr gets one line however many
    attempts failed; once it listens again, the kept records arrive once each, in order."""
    port = free_port()
    tel = make_telemetry(**otlp_config(f"http://127.0.0.1:{port}", max_buffer=200, batch_size=50))
    log = tel.get_logger("outage")
    slowest = 0.0
    for n in range(300):
        started = time.perf_counter()
        log.info("line", n=n)
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.05
    time.sleep(1.2)  # several backoff periods of refused connections
    assert dropped(tel, "otlp", "buffer_full") == 100
    down = failure_lines(capsys.readouterr().err)
    assert len(down) == 1, down
    assert f"otlp http://127.0.0.1:{port}/v1/logs: ConnectionRefusedError" in down[0]
    assert "200 events buffered" in down[0]

    with OtlpLogsReceiver(port=port) as receiver:
        assert receiver.wait_for(lambda: len(receiver.records()) >= 200, timeout=5)
        log.info("after", n=300)
        assert flushed(tel)
        assert numbers(receiver.records()) == [*range(200), 300]
    assert "Log shipping to otlp" in capsys.readouterr().err  # recovered
    assert dropped(tel, "otlp", "rejected") == dropped(tel, "otlp", "shutdown") == 0


def test_503_with_retry_after_is_retried_after_it(
    make_telemetry: MakeTelemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 503 saying ``Retry-After: 1`` delays the next attempt a second (the backoff is 200 ms);
    nothing is lost or duplicated when the Collector heals."""
    with OtlpLogsReceiver() as receiver:
        receiver.status, receiver.retry_after = 503, "1"
        tel = make_telemetry(**otlp_config(f"http://127.0.0.1:{receiver.port}"), log_sinks=[])
        times: list[float] = []
        log = tel.get_logger("busy")
        for n in range(10):
            log.info("line", n=n)
        assert receiver.wait_for(lambda: receiver.attempts >= 1, timeout=5)
        times.append(time.monotonic())
        assert receiver.wait_for(lambda: receiver.attempts >= 2, timeout=5)
        times.append(time.monotonic())
        assert times[1] - times[0] >= 0.9
        receiver.status = 200
        assert receiver.wait_for(lambda: len(receiver.records()) >= 10, timeout=5)
        assert flushed(tel)
        assert numbers(receiver.records()) == list(range(10))
    lines = failure_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert "HTTP 503" in lines[0]
    assert "next attempt in 1s" in lines[0]
    assert dropped(tel, "otlp", "rejected") == 0


def test_400_is_rejected_counted_and_not_retried(
    make_telemetry: MakeTelemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400 will not get better: the batch is dropped as ``rejected`` at once, said once, and
    not sent again."""
    with OtlpLogsReceiver() as receiver:
        receiver.status = 400
        tel = make_telemetry(**otlp_config(f"http://127.0.0.1:{receiver.port}"), log_sinks=[])
        log = tel.get_logger("bad")
        for n in range(7):
            log.info("line", n=n)
        assert flushed(tel)
        time.sleep(0.5)  # two backoff periods: no retry comes
        assert receiver.attempts == 1
    assert dropped(tel, "otlp", "rejected") == 7
    assert failure_lines(capsys.readouterr().err) == [
        f"telemetry-web: Log shipping failed: otlp http://127.0.0.1:{receiver.port}/v1/logs: "
        "HTTP 400; 7 events dropped since the last report"
    ]


def test_partial_success_counts_the_rejected_records(
    make_telemetry: MakeTelemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    """An accepted request whose answer says ``rejected_log_records: 2`` counts two records as
    ``rejected``, with the Collector's message on stderr."""
    answer = ExportLogsServiceResponse()
    answer.partial_success.rejected_log_records = 2
    answer.partial_success.error_message = "attribute too long"
    with OtlpLogsReceiver() as receiver:
        receiver.answer = answer.SerializeToString()
        tel = make_telemetry(**otlp_config(f"http://127.0.0.1:{receiver.port}"), log_sinks=[])
        log = tel.get_logger("partial")
        for n in range(5):
            log.info("line", n=n)
        assert flushed(tel)
        assert receiver.attempts == 1
    assert dropped(tel, "otlp", "rejected") == 2
    (line,) = failure_lines(capsys.readouterr().err)
    assert "2 records rejected: attribute too long" in line


def test_a_hanging_collector_never_slows_requests_and_shutdown_counts_leftovers(
    traced: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the Collector sits on the request, requests through the middleware stay fast;
    shutdown ends within its budget and counts every record not exported as ``shutdown``."""
    with OtlpLogsReceiver() as receiver:
        receiver.hold()
        sink = {"endpoint": f"http://127.0.0.1:{receiver.port}", **FAST, "timeout": "30s"}
        telemetry, _spans = traced(sink)
        durations = drive_requests(telemetry)
        assert_not_slowed(durations)
        assert receiver.wait_for(lambda: receiver.attempts >= 1, timeout=5)
        durations = drive_requests(telemetry)  # while the export hangs
        assert_not_slowed(durations)
        started = time.monotonic()
        telemetry.shutdown(timeout=1.0)
        assert time.monotonic() - started < 1.8
        leftovers = telemetry.registry.get_sample_value(
            "telemetry_log_events_dropped_total",
            {"service": "orders", "environment": "prod", "sink": "otlp", "reason": "shutdown"},
        )
        assert leftovers == 2 * REQUESTS * 3  # request, loaded and stdlib lines per request
        assert receiver.records() == []
    assert f"{2 * REQUESTS * 3} events not shipped at shutdown" in capsys.readouterr().err


def test_the_buffer_is_bounded_by_bytes(make_telemetry: MakeTelemetry) -> None:
    """With the Collector away, ``max_buffer_bytes`` (encoded records) stops the buffer long
    before ``max_buffer``; the rest is ``buffer_full``, the kept records arrive afterwards."""
    port = free_port()
    config = otlp_config(f"http://127.0.0.1:{port}", max_buffer_bytes="32KB")
    tel = make_telemetry(**config, log_sinks=[])
    log = tel.get_logger("outage")
    for n in range(100):
        log.info("line", n=n, payload="y" * 1000)
    time.sleep(0.5)
    full = dropped(tel, "otlp", "buffer_full")
    assert 60 <= full < 100
    kept = int(100 - full)
    assert tel.pipeline is not None
    (sink,) = tel.pipeline.sinks
    assert isinstance(sink, OtlpLogSink)
    assert 0 < sink._bytes <= 32_000
    with OtlpLogsReceiver(port=port) as receiver:
        assert receiver.wait_for(lambda: len(receiver.records()) >= kept, timeout=5)
        assert flushed(tel)
        assert numbers(receiver.records()) == list(range(kept))
    assert sink._bytes == 0


def test_grpc_unavailable_with_retry_info_invalid_argument_and_hang(
    make_telemetry: MakeTelemetry, capsys: pytest.CaptureFixture[str]
) -> None:
    """gRPC: UNAVAILABLE with a 1 s RetryInfo is retried a second later; INVALID_ARGUMENT is
    rejected without a retry; a hanging call is cut at shutdown and its records counted."""
    with OtlpGrpcLogsReceiver() as receiver:
        receiver.script = ["UNAVAILABLE", "INVALID_ARGUMENT"]
        receiver.retry_delay = 1.0
        config = otlp_config(receiver.url, protocol="grpc", batch_size=5)
        tel = make_telemetry(**config, log_sinks=[])
        log = tel.get_logger("grpc")
        for n in range(5):
            log.info("line", n=n)
        assert receiver.wait_for(lambda: len(receiver.calls) >= 2, timeout=5)
        first, second = receiver.calls[0][0], receiver.calls[1][0]
        assert second - first >= 0.9  # the RetryInfo, not the 200 ms backoff
        assert flushed(tel)
        assert dropped(tel, "otlp", "rejected") == 5  # INVALID_ARGUMENT: not sent again
        for n in range(5, 8):
            log.info("line", n=n)
        assert flushed(tel)
        assert numbers(receiver.records()) == [5, 6, 7]
        assert len(receiver.calls) == 3

        receiver.hang = True
        for n in range(8, 12):
            log.info("line", n=n)
        assert receiver.wait_for(lambda: len(receiver.calls) >= 4, timeout=5)
        started = time.monotonic()
        tel.shutdown(timeout=1.0)
        assert time.monotonic() - started < 1.8
        assert dropped(tel, "otlp", "shutdown") == 4
    err = capsys.readouterr().err
    assert "gRPC UNAVAILABLE (scripted unavailable)" in err
    assert "gRPC INVALID_ARGUMENT" in err
    assert "5 events dropped" in err


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"endpoint": "collector:4318"}, "logging.sinks.otlp.endpoint: expected an http://"),
        ({"protocol": "thrift"}, "logging.sinks.otlp.protocol: expected one of"),
        ({"batch_size": 0}, "logging.sinks.otlp.batch_size: expected a positive number"),
        ({"flush_interval": "fast"}, "logging.sinks.otlp.flush_interval: expected"),
        ({"max_buffer_bytes": "lots"}, "logging.sinks.otlp.max_buffer_bytes: expected"),
    ],
)
def test_bad_otlp_settings(settings: dict[str, Any], problem: str) -> None:
    """OTLP sink settings are checked with their key paths."""
    with pytest.raises(ConfigError) as info:
        Telemetry({"logging": {"sinks": {"console": False, "otlp": settings}}}, use_env=False)
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_missing_extra_is_reported_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry-proto the sink fails when the Telemetry is built, naming the
    pip command."""
    monkeypatch.setitem(sys.modules, "opentelemetry.proto.collector.logs.v1", None)
    # No local store: the failed Telemetry's metric history would keep writing to the working
    # directory's (the repository's, under pytest).
    config = {"logging": {"sinks": {"console": False, "otlp": {}}}, "store": {"enabled": False}}
    with pytest.raises(MissingExtraError) as info:
        Telemetry(config, use_env=False)
    assert str(info.value) == (
        "logging.sinks.otlp needs 'opentelemetry-exporter-otlp', which is not installed: "
        "pip install 'telemetry-web[otlp]'"
    )


def test_defaults_and_no_store(make_telemetry: MakeTelemetry, tmp_path: Path) -> None:
    """``otlp: {}`` sends to the local Collector's HTTP port (gRPC: 4317); a configured OTLP
    sink keeps the embedded store from taking the log lines too."""
    # The store as by default (auto), but in the test's directory.
    store = {"enabled": "auto", "path": str(tmp_path / ".telemetry" / "telemetry.db")}
    tel = make_telemetry(logging={"sinks": {"otlp": {}}}, log_sinks=[], store=store)
    assert tel.pipeline is not None
    assert [getattr(s, "name", "") for s in tel.pipeline.sinks] == ["otlp"]
    assert tel.pipeline.sinks[0].url == "http://localhost:4318/v1/logs"  # type: ignore[attr-defined]
    grpc = make_telemetry(
        logging={"sinks": {"otlp": {"protocol": "grpc"}}}, log_sinks=[], store=store
    )
    assert grpc.pipeline.sinks[0].url == "http://localhost:4317"  # type: ignore[union-attr]


def test_the_section_round_trips() -> None:
    """``logging.sinks.otlp`` parses to the documented values and maps back to the same."""
    from telemetry_web.config import load_settings, parse_settings, settings_to_mapping

    section = {"endpoint": "https://collector:4318", "protocol": "grpc",
               "headers": {"x-tenant": "acme"}, "timeout": "5s", "batch_size": 100,
               "flush_interval": "2s", "max_buffer": 500, "max_buffer_bytes": "1MiB",
               "backoff": "500ms", "max_backoff": "1m"}  # fmt: skip
    settings = parse_settings({"logging": {"sinks": {"otlp": section}}})
    otlp = settings.logging.sinks.otlp
    assert otlp is not None
    assert (otlp.timeout, otlp.flush_interval, otlp.max_buffer_bytes, otlp.max_backoff) == (
        5.0, 2.0, 1024 * 1024, 60.0,
    )  # fmt: skip
    assert parse_settings(settings_to_mapping(settings)) == settings
    assert load_settings(settings, use_env=False) == settings


# Run in a fresh interpreter: a fork from the test process would inherit the threads and locks
# of every earlier test (the SDK's own at-fork hook can then wait forever on a thread pool's lock).
_FORKING_WORKER = """
import os, sys
from telemetry_web import Telemetry

port = int(sys.argv[1])
sink = {"endpoint": f"http://127.0.0.1:{port}", "flush_interval": "50ms"}
tel = Telemetry({"service": "forked", "logging": {"request_log": False,
                 "sinks": {"console": False, "otlp": sink}},
                 "store": {"enabled": False}}, use_env=False)
log = tel.get_logger("fork")
log.info("parent", n=0)
assert tel.pipeline.flush(5)
pid = os.fork()
if pid == 0:  # the child: log, deliver, leave without the parent's teardown
    log.info("child", n=1)
    os._exit(0 if tel.pipeline.flush(5) else 2)
_, status = os.waitpid(pid, 0)
print(pid, os.WEXITSTATUS(status))
tel.shutdown(timeout=2)
"""


def test_a_forked_worker_ships_its_own_lines_under_its_own_pid() -> None:
    """A worker forked after the sink started (gunicorn ``--preload``) gets its own buffer,
    thread and connection: its line arrives once, on a resource naming its own pid and
    ``service.instance.id`` and the same service."""
    with OtlpLogsReceiver() as receiver:
        done = subprocess.run(
            [sys.executable, "-c", _FORKING_WORKER, str(receiver.port)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        child, status = (int(word) for word in done.stdout.split())
        assert status == 0
        found = {record.body.string_value: resource for resource, _s, record in receiver.records()}
    assert sorted(found) == ["child", "parent"]
    parent = found["parent"]["process.pid"]
    assert parent != child
    assert found["child"]["process.pid"] == child
    assert found["child"]["service.name"] == found["parent"]["service.name"] == "forked"
    assert found["child"]["service.instance.id"] != found["parent"]["service.instance.id"]
