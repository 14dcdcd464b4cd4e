"""Span exporters (OTLP HTTP and gRPC, Zipkin, Jaeger collector and agent) against failing peers.

Each case: a healthy warm-up, then the fault while several times the queue's bound of requests
go through the middleware, a flush, then the backend heals and new spans must arrive.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.tracing._receivers import JaegerAgentReceiver
from tests.tracing._thrift_decoder import decode_batch_binary

from .._net import free_udp_port
from .._waiting import poll
from ._harness import (
    BATCH,
    MANY,
    MAX_QUEUE,
    SLOW,
    TIMEOUT,
    Checks,
    Run,
    client_for,
    span_probes,
    telemetry,
    trace_failure_lines,
)
from ._peers import MALFORMED, MODES, GrpcPeer, HttpPeer

DROPPED = "telemetry_spans_dropped_total"
RECOVERY = 5.0  # seconds a healed backend may take to receive new spans


def _otlp_count(body: bytes) -> int:
    request = ExportTraceServiceRequest.FromString(body)
    return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)


def _zipkin_count(body: bytes) -> int:
    return len(json.loads(body))


def _jaeger_count(body: bytes) -> int:
    return len(decode_batch_binary(body)["spans"])


@dataclass(frozen=True)
class Target:
    """An exporter, the peer standing in for its backend, and its configuration."""

    name: str  # the `exporter` label of the drop counter
    peer: Callable[[], Any]
    config: Callable[[Any], dict[str, Any]]


TARGETS = {
    "otlp-http": Target(
        "otlp",
        lambda: HttpPeer("/v1/traces", _otlp_count),
        lambda peer: {"otlp": {"endpoint": peer.url, "timeout": TIMEOUT}},
    ),
    "otlp-grpc": Target(
        "otlp",
        GrpcPeer,
        lambda peer: {"otlp": {"endpoint": peer.url, "protocol": "grpc", "timeout": TIMEOUT}},
    ),
    "zipkin": Target(
        "zipkin",
        lambda: HttpPeer("/api/v2/spans", _zipkin_count, ok_status=202),
        lambda peer: {"zipkin": {"endpoint": peer.url}},
    ),
    "jaeger-collector": Target(
        "jaeger",
        lambda: HttpPeer("/api/traces", _jaeger_count, ok_status=202),
        lambda peer: {"jaeger": {"endpoint": peer.url}},
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", list(TARGETS))
async def test_span_exporter_fault(target: str, mode: str) -> None:
    """Requests stay fast, queues bounded, drops counted, one report, recovery afterwards."""
    spec = TARGETS[target]
    peer = spec.peer()
    peer.delay = SLOW
    tel = telemetry({"tracing": {"exporters": spec.config(peer)}})
    checks = Checks()
    try:
        async with client_for(tel) as client:
            run = Run(tel, client, span_probes(tel))
            await _case(run, peer, spec.name, mode, checks)
    finally:
        tel.shutdown(timeout=1.0)
        peer.close()
    checks.verify()


async def _case(run: Run, peer: Any, name: str, mode: str, checks: Checks) -> None:
    tel = run.telemetry
    await run.send(BATCH)  # warm-up: the backend works
    tel.flush(5.0)
    assert peer.delivered == BATCH, f"warm-up: {peer.delivered} of {BATCH} spans delivered"

    with trace_failure_lines() as lines:
        peer.set_mode(mode)
        attempts = peer.attempts
        await run.send(BATCH)  # the first export meets the fault...
        poll(lambda: peer.attempts > attempts or _failed(run, name), bool, 3.0)  # either way
        await run.send(MANY)  # ...and requests go on while it lasts
        tel.flush(5.0)
        dropped = await run.dropped(DROPPED, "exporter", name)
        failures = len(lines.lines)
        reported = list(lines.lines)
        others = list(lines.others)

    run.check_request_path(checks)
    run.check_bounds(checks)
    checks.expect(not others, f"(4) {len(others)} other warning lines: {others[:3]}")
    total_dropped = sum(dropped.values())
    checks.expect(
        dropped.get("queue_full", 0) > 0 or mode not in ("hang",),
        f"(2) {MANY} requests against a hanging backend and no queue_full drop: {dropped}",
    )
    accounted = peer.delivered + total_dropped + run.queued()
    if mode in MALFORMED:
        # The peer may have stored a batch whose answer was unreadable: no span may vanish
        # uncounted, and none may be both counted as dropped and missing from the peer's view.
        checks.expect(
            accounted + peer.received_malformed >= run.sent,
            f"(3) spans lost uncounted: delivered {peer.delivered} + malformed "
            f"{peer.received_malformed} + dropped {dropped} + queued {run.queued()} "
            f"< sent {run.sent}",
        )
        checks.expect(failures <= 1, f"(4) {failures} error lines in one period: {reported}")
    else:
        checks.expect(
            accounted == run.sent,
            f"(3) delivered {peer.delivered} + dropped {dropped} + queued {run.queued()} "
            f"!= sent {run.sent}",
        )
        expected_lines = 0 if mode == "slow" else 1
        checks.expect(
            failures == expected_lines,
            f"(4) {failures} 'Trace export failed' lines, expected {expected_lines}: {reported}",
        )
        if mode != "slow":
            checks.expect(
                dropped.get("export_failed", 0) > BATCH,
                f"(4) expected several failed exports behind the one line, dropped: {dropped}",
            )

    peer.set_mode("ok")  # the fault clears
    before = peer.delivered
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY and peer.delivered - before < BATCH:
        await run.send(BATCH)
        tel.flush(5.0)
        if peer.delivered - before < BATCH:
            await asyncio.sleep(0.2)
    checks.expect(
        peer.delivered - before >= BATCH,
        f"(5) {RECOVERY:g} s after recovery {peer.delivered - before} of {BATCH} new spans "
        "delivered",
    )
    checks.expect(
        time.monotonic() - started < 1.0,
        f"(5) new spans delivered {time.monotonic() - started:.1f} s after the backend healed",
    )


def _failed(run: Run, name: str) -> bool:
    assert run.telemetry.tracer_provider is not None
    return any(
        p._settled > BATCH for p in run.telemetry.tracer_provider.batch_processors if p.name == name
    )


async def test_jaeger_agent_down() -> None:
    """UDP has no answers: with no agent listening requests stay fast and queues bounded, and
    spans reach the agent once it listens again."""
    port = free_udp_port()
    tel = telemetry({"tracing": {"exporters": {"jaeger": {"agent": {"port": port}}}}})
    checks = Checks()
    try:
        async with client_for(tel) as client:
            run = Run(tel, client, span_probes(tel))
            with trace_failure_lines() as lines:
                await run.send(MANY)
                tel.flush(5.0)
            run.check_request_path(checks)
            run.check_bounds(checks)
            dropped = await run.dropped(DROPPED, "exporter", "jaeger")
            checks.expect(
                sum(dropped.values()) + run.queued() <= run.sent,
                f"(3) more dropped than sent: {dropped}",
            )
            checks.expect(len(lines.lines) <= 1, f"(4) {len(lines.lines)} error lines")
            receiver = JaegerAgentReceiver()
            receiver.sock.close()
            receiver.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.sock.bind(("127.0.0.1", port))
            receiver.sock.settimeout(0.2)
            with receiver:
                await run.send(BATCH)
                tel.flush(5.0)
                arrived = receiver.wait_for(lambda: len(receiver.spans()) >= BATCH, 3.0)
            checks.expect(arrived, f"(5) {len(receiver.spans())} of {BATCH} spans after recovery")
    finally:
        tel.shutdown(timeout=1.0)
    checks.verify()


assert MAX_QUEUE < MANY  # the fault phase sends several times each bound
