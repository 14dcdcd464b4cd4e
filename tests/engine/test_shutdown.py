"""Shutdown and flush within one budget, against real loopback peers that hang (issue 12): an
OTLP collector that accepts requests and never answers (``OtlpReceiver.hold``) and an
Elasticsearch ``_bulk`` receiver that never answers (``BulkReceiver(mode="hang")``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from telemetry_web import Telemetry

from ..logging._bulk_receiver import BulkReceiver
from ..tracing._receivers import OtlpReceiver

SERVICE = "shutdown-test"
MARGIN = 1.0  # a behavioural bound, not a benchmark: generous for a loaded CI machine


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    """An OTLP collector that takes every request and never answers (until the test ends)."""
    with OtlpReceiver() as receiver:
        receiver.hold()
        yield receiver


@pytest.fixture
def elasticsearch() -> Iterator[BulkReceiver]:
    """An Elasticsearch stand-in that reads every bulk request and never answers."""
    receiver = BulkReceiver(mode="hang", hang=30.0)
    receiver.start()
    yield receiver
    receiver.stop()


def build(*, otlp: str | None = None, es: str | None = None, **extra: Any) -> Telemetry:
    exporters: dict[str, Any] = {}
    if otlp is not None:
        exporters["otlp"] = {"endpoint": otlp, "timeout": "30s"}
    sinks: dict[str, Any] = {"console": False}
    if es is not None:
        sinks["elasticsearch"] = {"url": es, "flush_interval": "50ms", "timeout": "30s"}
    config = {
        "service": SERVICE,
        "store": {"enabled": "false"},
        "logging": {"request_log": False, "sinks": sinks},
        "tracing": {
            "sampling": "always_on",
            "exporters": exporters,
            "batch": {"schedule_delay": "50ms", "max_export_batch_size": 50},
        },
        **extra,
    }
    return Telemetry(config, use_env=False, set_global=False, capture_stdlib_logging=False)


def counted(telemetry: Telemetry, name: str, **labels: str) -> float:
    """The sum of ``name`` over the label sets matching ``labels``."""
    total = 0.0
    for metric in telemetry.registry.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def spans_dropped(telemetry: Telemetry, exporter: str, reason: str | None = None) -> float:
    labels = {"exporter": exporter} if reason is None else {"exporter": exporter, "reason": reason}
    return counted(telemetry, "telemetry_spans_dropped_total", **labels)


def logs_dropped(telemetry: Telemetry, reason: str | None = None) -> float:
    labels = {} if reason is None else {"reason": reason}
    return counted(telemetry, "telemetry_log_events_dropped_total", **labels)


def produce(telemetry: Telemetry, spans: int, lines: int) -> None:
    tracer = telemetry.get_tracer("test")
    log = telemetry.get_logger("test")
    for i in range(spans):
        tracer.start_span(f"span-{i}", kind=SpanKind.INTERNAL).end()
    for n in range(lines):
        log.info("line", n=n)


def timed(call: Any, *args: Any, **kwargs: Any) -> float:
    started = time.monotonic()
    call(*args, **kwargs)
    return time.monotonic() - started


def test_shutdown_keeps_its_budget_with_the_collector_and_elasticsearch_hanging(
    collector: OtlpReceiver, elasticsearch: BulkReceiver
) -> None:
    """shutdown(timeout=2) returns within the budget with both backends hanging (they used to
    get the whole timeout in turn), and every span and log event is delivered or counted as
    dropped, the ones in flight and still queued with reason ``shutdown``."""
    telemetry = build(otlp=collector.url, es=elasticsearch.url)
    produce(telemetry, 120, 80)
    time.sleep(0.3)  # the first span batch is now in flight, held by the collector
    elasticsearch.wait_requests(1, timeout=5)  # a bulk request is now in flight, hanging
    produce(telemetry, 80, 70)
    elapsed = timed(telemetry.shutdown, timeout=2.0)
    assert elapsed < 2.0 + MARGIN
    assert collector.count() + spans_dropped(telemetry, "otlp") == 200
    assert spans_dropped(telemetry, "otlp", "shutdown") == 200
    delivered = len(elasticsearch.documents)
    assert delivered + logs_dropped(telemetry) == 150
    assert logs_dropped(telemetry, "shutdown") == 150 - delivered


def test_one_hanging_exporter_does_not_spend_the_others_budget(collector: OtlpReceiver) -> None:
    """Exporters stop in parallel: with one collector hanging, a working one still receives
    every span at shutdown, and the hung one's spans are counted as dropped."""
    with OtlpReceiver() as working:
        telemetry = build(otlp=collector.url)
        assert telemetry.tracer_provider is not None
        from telemetry_web.tracing._batch import BoundedBatchProcessor
        from telemetry_web.tracing._provider import _otlp_exporter

        second = BoundedBatchProcessor(
            lambda: _otlp_exporter(working.url, "http/protobuf", {}, 30.0),
            "otlp-working",
            telemetry._spans_dropped,
            schedule_delay=60.0,  # nothing leaves before shutdown flushes it
        )
        telemetry.tracer_provider.add_span_processor(second)
        produce(telemetry, 300, 0)
        elapsed = timed(telemetry.shutdown, timeout=2.0)
        assert elapsed < 2.0 + MARGIN
        assert working.count() == 300
        assert spans_dropped(telemetry, "otlp-working") == 0
        assert collector.count() + spans_dropped(telemetry, "otlp") == 300


def test_flush_keeps_its_budget_with_both_backends_hanging(
    collector: OtlpReceiver, elasticsearch: BulkReceiver
) -> None:
    """flush(timeout=2) waits for every queue at once, not for each in turn."""
    telemetry = build(otlp=collector.url, es=elasticsearch.url)
    try:
        produce(telemetry, 100, 100)
        elasticsearch.wait_requests(1, timeout=5)
        elapsed = timed(telemetry.flush, timeout=2.0)
        assert elapsed < 2.0 + MARGIN
    finally:
        telemetry.shutdown(timeout=0.5)


class _BlockingSink:
    """A log sink whose writes wait until released: the writer thread is stuck in it."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.events = 0

    def write(self, events: Any) -> None:
        self.release.wait(30)
        self.events += len(events)


def test_a_blocked_sink_keeps_the_log_queue_within_its_bytes_and_shutdown_counts_it() -> None:
    """With the writer stuck in a sink, the log queue stops at ``logging.queue_bytes`` (big
    events are dropped as ``queue_full`` long before ``queue_size``), and what is still queued
    at the end of the shutdown budget is counted as ``shutdown``."""
    sink = _BlockingSink()
    config = {
        "service": SERVICE,
        "store": {"enabled": "false"},
        "logging": {"request_log": False, "sinks": {"console": False}, "queue_bytes": "64KB"},
    }
    telemetry = Telemetry(config, log_sinks=[sink], use_env=False, set_global=False,
                          capture_stdlib_logging=False)  # fmt: skip
    try:
        log = telemetry.get_logger("test")
        log.info("first")
        time.sleep(0.3)  # the writer has taken it and is stuck in the sink
        for n in range(200):
            log.info("big", n=n, payload="x" * 2000)
        assert telemetry.pipeline is not None
        assert telemetry.pipeline.queued_bytes <= 64 * 1024
        full = logs_dropped(telemetry, "queue_full")
        assert 150 <= full < 200
        elapsed = timed(telemetry.shutdown, timeout=1.0)
        assert elapsed < 1.0 + MARGIN
        assert logs_dropped(telemetry, "shutdown") == 200 - full
    finally:
        sink.release.set()
