"""Real requests through a real Telemetry while a backend misbehaves, and what to check after.

A case sends requests through :class:`~telemetry_web.TelemetryMiddleware` (in-process ASGI via
``httpx.ASGITransport``), timing each one and sampling the length of every bounded queue after
each; ``Checks`` collects every broken expectation so one run reports all five properties:

1. no request failed, none took longer than ``REQUEST_BUDGET``;
2. no queue ever held more than its configured maximum;
3. drops are counted: delivered + dropped + still queued == sent;
4. one error line per report period;
5. recovery: once the fault clears, new items are delivered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.tracing._batch import BoundedBatchProcessor

from .._metrics import Scrape
from .._requests import ok_app

SERVICE = "faults"
# A behavioural bound, not a benchmark: an in-process request costs about a millisecond; one
# that waited for a hanging backend would take the exporter's timeout (0.5 s and more). On two
# shared cores a lone request can lose 100 ms to the scheduler, hence two bounds: every request
# under REQUEST_BUDGET, 95 % of them under TYPICAL_BUDGET.
REQUEST_BUDGET = 2.0  # the worst request; blocking shows in the 95th percentile (tests/_timing.py)
TYPICAL_BUDGET = 0.02
MAX_QUEUE = 16  # spans per exporter queue, events in the log queue
BATCH = 8  # spans per export, events per bulk request
MANY = 120  # requests sent while the fault lasts: several times every bound
TIMEOUT = 0.5  # every exporter's and sink's request timeout
SLOW = 0.1  # how late a slow backend answers


@dataclass
class Checks:
    """Expectations gathered over a whole case, reported together."""

    failures: list[str] = field(default_factory=list)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.failures.append(message)

    def verify(self) -> None:
        assert not self.failures, "\n".join(["fault case broke:", *self.failures])


Probe = Callable[[], tuple[int, int]]  # (length now, configured maximum)


@dataclass
class Run:
    """A Telemetry, its middleware and client, and what the requests measured."""

    telemetry: Telemetry
    client: httpx.AsyncClient
    probes: dict[str, Probe] = field(default_factory=dict)
    sent: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)
    peaks: dict[str, int] = field(default_factory=dict)

    async def send(self, count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            response = await self.client.get("/work")
            elapsed = time.perf_counter() - started
            self.sent += 1
            self.failed += response.status_code != 200
            self.durations.append(elapsed)
            self.sample()

    def sample(self) -> None:
        for name, probe in self.probes.items():
            length, _ = probe()
            self.peaks[name] = max(self.peaks.get(name, 0), length)

    def queued(self) -> int:
        return sum(probe()[0] for probe in self.probes.values())

    async def dropped(self, family: str, label: str, value: str) -> dict[str, float]:
        """``{reason: count}`` of one exporter's or sink's drops, read from ``/metrics``."""
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        found: dict[str, float] = {}
        for labels, count in Scrape.parse(response.text).series(family):
            if labels.get(label) == value:
                found[labels["reason"]] = count
        return found

    def check_request_path(self, checks: Checks) -> None:
        checks.expect(self.failed == 0, f"(1) {self.failed} of {self.sent} requests failed")
        ordered = sorted(self.durations)
        slowest, typical = ordered[-1], ordered[int(len(ordered) * 0.95)]
        checks.expect(
            slowest < REQUEST_BUDGET,
            f"(1) the slowest request took {slowest * 1000:.0f} ms "
            f"(budget {REQUEST_BUDGET * 1000:.0f} ms)",
        )
        checks.expect(
            typical < TYPICAL_BUDGET,
            f"(1) 5 % of requests took {typical * 1000:.0f} ms or more "
            f"(budget {TYPICAL_BUDGET * 1000:.0f} ms)",
        )

    def check_bounds(self, checks: Checks) -> None:
        for name, probe in self.probes.items():
            bound = probe()[1]
            peak = self.peaks.get(name, 0)
            checks.expect(peak <= bound, f"(2) {name} held {peak} items, over its maximum {bound}")


def telemetry(config: dict[str, Any], **kwargs: Any) -> Telemetry:
    """A Telemetry for a case: always sampled, no console, small queues."""
    base: dict[str, Any] = {
        "service": SERVICE,
        "logging": {"sinks": {"console": False}, "queue_size": MAX_QUEUE},
        "tracing": {
            "sampling": "always_on",
            "batch": {
                "max_queue_size": MAX_QUEUE,
                "max_export_batch_size": BATCH,
                "schedule_delay": "50ms",
                "export_timeout": TIMEOUT,
            },
        },
        "store": {"enabled": "false"},
    }
    for key, value in config.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    kwargs.setdefault("use_env", False)
    kwargs.setdefault("set_global", False)
    kwargs.setdefault("capture_stdlib_logging", False)
    return Telemetry(base, **kwargs)


def client_for(tel: Telemetry) -> httpx.AsyncClient:
    app = TelemetryMiddleware(ok_app, telemetry=tel)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def span_probes(tel: Telemetry) -> dict[str, Probe]:
    """The span queue of every exporter, read through its batch processor."""
    assert tel.tracer_provider is not None
    return {f"span queue ({p.name})": _queue_probe(p) for p in tel.tracer_provider.batch_processors}


def _queue_probe(processor: BoundedBatchProcessor) -> Probe:
    return lambda: (processor.queued, processor.max_queue_size)


def log_probes(tel: Telemetry) -> dict[str, Probe]:
    """The log pipeline's queue and the Elasticsearch sink's buffer (when there is one)."""
    pipeline = tel.pipeline
    assert pipeline is not None
    probes: dict[str, Probe] = {
        "log queue": lambda: (len(pipeline._queue), pipeline._max_queue),
    }
    for sink in pipeline.sinks:
        if getattr(sink, "name", "") == "elasticsearch":

            def buffered(sink: Any = sink) -> tuple[int, int]:
                with sink._lock:
                    return len(sink._buffer) + sink._in_flight, sink.max_buffer

            probes["elasticsearch buffer"] = buffered
    return probes


class LineCounter(logging.Handler):
    """Every WARNING-or-worse record logged (by any logger but the test client's), and those
    whose message starts with ``prefix``: the one report line per period."""

    def __init__(self, prefix: str) -> None:
        super().__init__(logging.WARNING)
        self.prefix = prefix
        self.lines: list[str] = []
        self.others: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self.prefix):
            self.lines.append(message)
        elif not record.name.startswith(("httpx", "httpcore", "asyncio")):
            self.others.append(f"{record.name}: {message}")


@contextmanager
def trace_failure_lines() -> Iterator[LineCounter]:
    """The ``Trace export failed: ...`` lines, and any other warning, logged in the block."""
    counter = LineCounter("Trace export failed")
    root = logging.getLogger()
    root.addHandler(counter)
    try:
        yield counter
    finally:
        root.removeHandler(counter)


def stderr_lines(text: str, marker: str) -> list[str]:
    return [line for line in text.splitlines() if marker in line]
