"""The push base every metric output builds on: interval, backoff, drops, reports, one pusher."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from telemetry_web.metrics.outputs import ExportError, PushOutput, Snapshot

from .._waiting import wait_until


class Recording(PushOutput):
    """An output that records what it was given and fails as told."""

    kind = "test"
    FIRST_BACKOFF = 0.05
    MAX_BACKOFF = 0.2

    def __init__(self, **kwargs: Any) -> None:
        self.sent: list[Snapshot] = []
        self.attempts: list[float] = []
        self.failure: BaseException | None = None
        self.hang = threading.Event()
        self.hanging = False
        super().__init__(**kwargs)

    def export(self, snapshot: Snapshot, timeout: float) -> None:
        self.attempts.append(time.monotonic())
        if self.hanging:
            self.hang.wait(timeout)
            raise TimeoutError("timed out")
        if self.failure is not None:
            raise self.failure
        self.sent.append(snapshot)


class Dropped:
    """A stand-in for telemetry_metrics_dropped_total: counts per (exporter, reason)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], float] = {}

    def labels(self, exporter: str, reason: str) -> Any:
        outer = self

        class Child:
            def inc(self, amount: float = 1) -> None:
                key = (exporter, reason)
                outer.counts[key] = outer.counts.get(key, 0) + amount

        return Child()

    def __getitem__(self, reason: str) -> float:
        return sum(v for (_e, r), v in self.counts.items() if r == reason)


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("jobs", "Jobs.", ["queue"], registry=registry).labels("a").inc(3)
    Histogram("work_seconds", "Work.", buckets=[1.0], registry=registry).observe(0.5)
    return registry


@pytest.fixture
def make(registry: CollectorRegistry) -> Iterator[Any]:
    made: list[Recording] = []

    def make(**kwargs: Any) -> tuple[Recording, Dropped]:
        dropped = Dropped()
        options = {"name": "test", "where": "http://backend/write", "interval": 0.05,
                   "timeout": 1.0, "source": registry, "dropped": dropped, **kwargs}  # fmt: skip
        output = Recording(**options)
        made.append(output)
        return output, dropped

    yield make
    for output in made:
        output.shutdown(0.5)


def test_pushes_the_registry_every_interval(make: Any) -> None:
    """Started, an output sends a snapshot every interval: every sample but ``_created``."""
    output, dropped = make()
    output.start()
    wait_until(lambda: len(output.sent) >= 3, 5.0)
    snapshot = output.sent[-1]
    names = {sample.name for _family, sample in snapshot.series()}
    assert names == {"jobs_total", "work_seconds_bucket", "work_seconds_count",
                     "work_seconds_sum"}  # fmt: skip
    assert snapshot.samples == 5  # jobs_total, 2 buckets, _count, _sum
    assert abs(snapshot.timestamp_ms / 1000 - time.time()) < 5
    assert dropped.counts == {}


def test_retryable_failures_back_off_keep_one_snapshot_and_recover(make: Any) -> None:
    """While a backend fails, one snapshot waits (newer ones replace it, counted as dropped),
    attempts are spaced by a growing pause, and the next success delivers fresh values."""
    output, dropped = make()
    output.failure = ExportError("HTTP 503", retry=True)
    output.start()
    wait_until(lambda: len(output.attempts) >= 5, 5.0)
    assert output.pending_samples in (0, 5)  # never more than one snapshot
    gaps = [b - a for a, b in zip(output.attempts, output.attempts[1:], strict=False)]
    assert max(gaps) >= 0.15  # the pause grew towards MAX_BACKOFF (0.2 s)
    assert dropped["export_failed"] > 0
    assert dropped["export_failed"] % 5 == 0  # whole snapshots
    output.failure = None
    wait_until(lambda: len(output.sent) >= 1, 5.0)
    assert dropped["rejected"] == 0


def test_a_rejected_snapshot_is_not_retried(make: Any) -> None:
    """``retry=False`` (a 4xx): the snapshot is counted as rejected and not sent again."""
    output, dropped = make(interval=0.3)
    output.failure = ExportError("HTTP 400", retry=False)
    output.start()
    wait_until(lambda: len(output.attempts) >= 1, 5.0)
    time.sleep(0.2)  # no retry before the next interval
    assert len(output.attempts) == 1
    assert dropped["rejected"] == 5
    assert output.pending_samples == 0


def test_retry_after_is_honoured(make: Any) -> None:
    """A backend's ``Retry-After`` lengthens the pause before the next attempt."""
    output, _dropped = make()
    output.failure = ExportError("HTTP 429", retry=True, retry_after=0.6)
    output.start()
    wait_until(lambda: len(output.attempts) >= 2, 5.0)
    assert output.attempts[1] - output.attempts[0] >= 0.55


def test_one_report_per_period_with_cause_and_destination(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Many failed attempts make one ``Metric export failed: <cause> to <where>`` line."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    output, _dropped = make(report_period=30.0)
    output.failure = ConnectionRefusedError(111, "Connection refused")
    output.start()
    wait_until(lambda: len(output.attempts) >= 5, 5.0)
    lines = [r.getMessage() for r in caplog.records if "Metric export failed" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("Metric export failed: connection refused to http://backend/write")


def test_status_errors_are_reported_to_the_destination(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """An ExportError's cause is reported as ``<cause> to <where>``."""
    caplog.set_level(logging.WARNING, logger="telemetry_web.metrics")
    output, _dropped = make()
    output.failure = ExportError("HTTP 500 (boom)")
    output.start()
    wait_until(lambda: len(output.attempts) >= 1, 5.0)
    wait_until(lambda: any("Metric export failed" in r.getMessage() for r in caplog.records), 5.0)
    assert "Metric export failed: HTTP 500 (boom) to http://backend/write" in caplog.text


def test_flush_sends_now_and_shutdown_counts_what_is_left(make: Any) -> None:
    """flush() pushes at once; shutdown() against a hung backend returns within its budget and
    counts the waiting snapshot as ``shutdown``."""
    output, dropped = make(interval=60.0)
    assert output.flush(2.0)
    assert len(output.sent) == 1
    output.hanging = True
    started = time.monotonic()
    output.shutdown(0.3)
    assert time.monotonic() - started < 1.0
    assert dropped["shutdown"] == 5
    output.hang.set()


def test_one_process_pushes_merged_values_and_another_takes_over(make: Any, tmp_path: Path) -> None:
    """Two outputs sharing a multiprocess directory: one holds the push lock and pushes; when
    it stops, the other takes over."""
    first, _ = make(shared_dir=str(tmp_path))
    first.start()
    wait_until(lambda: len(first.sent) >= 1, 5.0)
    second, _ = make(shared_dir=str(tmp_path))
    second.start()
    time.sleep(0.3)
    assert second.sent == []
    first.shutdown(0.5)
    wait_until(lambda: len(second.sent) >= 1, 5.0)


def test_outputs_of_deltas_push_from_every_process(make: Any, tmp_path: Path) -> None:
    """``merged = False`` (StatsD): no push lock, every process pushes."""

    class Deltas(Recording):
        merged = False

    dropped = Dropped()
    options = {"name": "d", "where": "udp://statsd", "interval": 0.05, "timeout": 1.0,
               "dropped": dropped, "shared_dir": str(tmp_path)}  # fmt: skip
    registry = CollectorRegistry()
    outputs = [Deltas(source=registry, **options) for _ in range(2)]
    try:
        for output in outputs:
            output.start()
        wait_until(lambda: all(o.sent for o in outputs), 5.0)
    finally:
        for output in outputs:
            output.shutdown(0.5)


def test_a_forked_child_pushes_from_its_own_thread(tmp_path: Path) -> None:
    """After os.fork the child starts its own thread and pushes; the parent goes on too."""
    script = textwrap.dedent(f"""
        import os, time
        from prometheus_client import CollectorRegistry
        from telemetry_web.metrics.outputs import PushOutput

        class Out(PushOutput):
            merged = False
            def export(self, snapshot, timeout):
                with open({str(tmp_path / "pushes")!r}, "a") as f:
                    f.write(f"{{os.getpid()}}\\n")

        class Dropped:
            def labels(self, *a):
                return self

        out = Out(name="t", where="w", interval=0.05, timeout=1, source=CollectorRegistry(),
                  dropped=Dropped())
        out.start()
        time.sleep(0.2)
        pid = os.fork()
        time.sleep(0.5)
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print(pid)
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    child = int(result.stdout.strip())
    pids = {int(line) for line in (tmp_path / "pushes").read_text().split()}
    assert child in pids  # the child's own thread pushed
    assert len(pids) == 2  # and so did the parent's
