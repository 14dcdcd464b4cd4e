"""The bounded batch span processor, against loopback OTLP receivers (no exporter is faked)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from telemetry_web import Telemetry

from .._net import free_port
from ._receivers import OtlpReceiver
from ._support import call, traced_app

MakeTelemetry = Callable[..., Telemetry]


@pytest.fixture
def make_telemetry() -> Iterator[MakeTelemetry]:
    """``make_telemetry(endpoint, **batch)``: OTLP to ``endpoint``, shut down after the test."""
    made: list[Telemetry] = []

    def factory(endpoint: str, **batch: Any) -> Telemetry:
        config = {
            "service": "batch-test",
            "logging": {"sinks": {"console": False}},
            "tracing": {
                "sampling": "always_on",
                "exporters": {"otlp": {"endpoint": endpoint, "timeout": "2s"}},
                "batch": {"schedule_delay": "50ms", **batch},
            },
            # No local store: it would be the working directory's (the repository's).
            "store": {"enabled": False},
        }
        telemetry = Telemetry(config, use_env=False, set_global=False,
                              capture_stdlib_logging=False)  # fmt: skip
        made.append(telemetry)
        return telemetry

    yield factory
    for telemetry in made:
        telemetry.shutdown(timeout=1.0)


def dropped(telemetry: Telemetry, reason: str, exporter: str = "otlp") -> float:
    value = telemetry.registry.get_sample_value(
        "telemetry_spans_dropped_total",
        {"service": "batch-test", "environment": "development", "exporter": exporter,
         "reason": reason},
    )  # fmt: skip
    return value or 0.0


def end_spans(telemetry: Telemetry, count: int) -> None:
    tracer = telemetry.get_tracer("test")
    for i in range(count):
        tracer.start_span(f"span-{i}", kind=SpanKind.INTERNAL).end()


def test_a_full_queue_drops_and_counts_every_dropped_span_exactly(
    make_telemetry: MakeTelemetry,
) -> None:
    """With the receiver stalled, a 10-span queue keeps at most 10 (+1 batch in flight); every
    span is either received or counted as `queue_full`, exactly."""
    with OtlpReceiver() as receiver:
        receiver.hold()
        telemetry = make_telemetry(receiver.url, max_queue_size=10, max_export_batch_size=5)
        end_spans(telemetry, 5)
        time.sleep(0.3)  # the first batch is now in flight, held by the receiver
        started = time.perf_counter()
        end_spans(telemetry, 195)
        assert time.perf_counter() - started < 1.0  # the request path never waits
        receiver.release()
        telemetry.flush(timeout=5)
        received = receiver.count()
        assert received <= 15
        assert received + dropped(telemetry, "queue_full") == 200
        assert dropped(telemetry, "export_failed") == 0


def test_requests_never_wait_for_a_stalled_backend(make_telemetry: MakeTelemetry) -> None:
    """500 requests through the ASGI middleware finish promptly while the collector hangs."""
    import asyncio

    with OtlpReceiver() as receiver:
        receiver.hold()
        telemetry = make_telemetry(receiver.url, max_queue_size=50, max_export_batch_size=10)
        app = traced_app(telemetry)

        async def drive() -> list[int]:
            return [await call(app) for _ in range(500)]

        started = time.perf_counter()
        assert set(asyncio.run(drive())) == {200}
        assert time.perf_counter() - started < 5.0
        receiver.release()
        telemetry.flush(timeout=5)
        assert receiver.count() + dropped(telemetry, "queue_full") == 500


def test_export_failure_is_logged_once_per_period_with_its_cause(
    make_telemetry: MakeTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection refused: one `Trace export failed: connection refused to <url>` line for many
    failed batches, and every failed span counted as `export_failed`."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/traces"
    caplog.set_level(logging.DEBUG)
    telemetry = make_telemetry(url, max_export_batch_size=4)
    for _ in range(5):
        end_spans(telemetry, 4)
        telemetry.flush(timeout=5)
    failures = [r for r in caplog.records if r.getMessage().startswith("Trace export failed")]
    assert len(failures) == 1
    assert failures[0].getMessage().startswith(f"Trace export failed: connection refused to {url}")
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry.exporter")]
    assert dropped(telemetry, "export_failed") == 20


def test_error_status_is_reported_and_counted(
    make_telemetry: MakeTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """A collector answering 400 fails the batch: counted, and reported once with the status."""
    with OtlpReceiver() as receiver:
        receiver.status = 400
        telemetry = make_telemetry(receiver.url)
        end_spans(telemetry, 3)
        telemetry.flush(timeout=5)
        assert dropped(telemetry, "export_failed") == 3
        (line,) = [
            r.getMessage() for r in caplog.records if "Trace export failed" in r.getMessage()
        ]
        assert "400" in line
        assert receiver.url in line


def test_recovers_after_the_backend_returns(make_telemetry: MakeTelemetry) -> None:
    """Spans ended after the collector comes back are delivered (a flush skips the backoff)."""
    with OtlpReceiver() as receiver:
        receiver.status = 503
        telemetry = make_telemetry(receiver.url)
        end_spans(telemetry, 2)
        telemetry.flush(timeout=5)
        receiver.status = 200
        end_spans(telemetry, 3)
        telemetry.flush(timeout=5)
        assert receiver.count() == 3
        assert dropped(telemetry, "export_failed") == 2


def test_shutdown_is_bounded_and_counts_what_is_left(make_telemetry: MakeTelemetry) -> None:
    """A collector that never answers cannot hold shutdown past its budget; spans still queued,
    and the batch still in flight, are counted as dropped at `shutdown`."""
    with OtlpReceiver() as receiver:
        receiver.hold()
        telemetry = make_telemetry(receiver.url, max_export_batch_size=5)
        end_spans(telemetry, 5)
        time.sleep(0.3)  # first batch in flight
        end_spans(telemetry, 7)
        started = time.monotonic()
        telemetry.shutdown(timeout=0.5)
        assert time.monotonic() - started < 1.5
        assert dropped(telemetry, "shutdown") == 7 + 5
        assert receiver.count() == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_a_forked_child_exports_its_own_spans_and_not_the_parents(
    make_telemetry: MakeTelemetry,
) -> None:
    """After fork the child starts with an empty queue and its own exporter: the receiver gets
    the parent's queued span once and the child's span once."""
    with OtlpReceiver() as receiver:
        telemetry = make_telemetry(receiver.url, schedule_delay="30s")
        tracer = telemetry.get_tracer("test")
        tracer.start_span("in-parent").end()
        pid = os.fork()
        if pid == 0:  # the child
            try:
                tracer.start_span("in-child").end()
                telemetry.flush(timeout=5)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        telemetry.flush(timeout=5)
        names = sorted(span.name for _, span in receiver.spans())
        assert names == ["in-child", "in-parent"]


def test_the_queue_is_bounded_by_bytes_as_well(make_telemetry: MakeTelemetry) -> None:
    """Big spans fill ``max_queue_bytes`` long before ``max_queue_size``: the estimated bytes
    held (the batch in flight included) stay within it, the rest is counted as `queue_full`,
    and every span is received or counted once the collector answers again."""
    with OtlpReceiver() as receiver:
        receiver.hold()
        telemetry = make_telemetry(receiver.url, max_queue_bytes="64KB", max_export_batch_size=5)
        tracer = telemetry.get_tracer("test")
        for i in range(100):
            tracer.start_span(f"big-{i}", attributes={"payload": "x" * 4000}).end()
        assert telemetry.tracer_provider is not None
        (processor,) = telemetry.tracer_provider.batch_processors
        assert 0 < processor.queued_bytes <= 64 * 1024
        full = dropped(telemetry, "queue_full")
        assert full >= 80  # about 4.7 KB each: at most 13 fit
        receiver.release()
        telemetry.flush(5)
        assert receiver.count() + full == 100
        assert processor.queued_bytes == 0


@pytest.mark.parametrize(
    ("value", "expected"), [("4MiB", 4 * 1024 * 1024), ("512KB", 512_000), (65536, 65536)]
)
def test_max_queue_bytes_takes_sizes(value: object, expected: int) -> None:
    """``tracing.batch.max_queue_bytes`` is a size, like the other size keys."""
    from telemetry_web.config import load_settings

    settings = load_settings({"tracing": {"batch": {"max_queue_bytes": value}}}, use_env=False)
    assert settings.tracing.batch.max_queue_bytes == expected


@pytest.mark.parametrize("value", [0, -1, "lots"])
def test_max_queue_bytes_must_be_a_positive_size(value: object) -> None:
    """Zero, negative and unreadable sizes are configuration errors naming the key."""
    from telemetry_web.config import load_settings
    from telemetry_web.errors import ConfigError

    with pytest.raises(ConfigError, match=r"tracing\.batch\.max_queue_bytes: expected a positive"):
        load_settings({"tracing": {"batch": {"max_queue_bytes": value}}}, use_env=False)
