"""Part A: call each ASGI app directly, no server and no sockets, to isolate middleware cost."""

import gc
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message

from benchmarks.apps import BENCH_PATH, Produced, Variant

# Built once; each call gets a shallow copy because Starlette writes into the scope.
_SCOPE: dict[str, object] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": BENCH_PATH,
    "raw_path": BENCH_PATH.encode(),
    "root_path": "",
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"telemetry-web-bench/1.0"),
        (b"accept", b"*/*"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}
_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}
# Lets background exporter/log threads catch up between timed batches.
_PAUSE_S = 0.02


@dataclass
class InProcessResult:
    name: str
    round_us: list[float]  # mean µs per request of each timed round
    requests: int  # every call made, warm-up included: the denominator of per-request counts
    produced: Produced | None = None
    # Process CPU seconds (every thread) per 10,000 requests of each round: the timed loop
    # and the draining of the background queues it filled (span export, log writing).
    round_cpu: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.round_us)

    @property
    def median_cpu(self) -> float | None:
        return statistics.median(self.round_cpu) if self.round_cpu else None


async def _receive() -> Message:
    return _REQUEST


class _Send:
    """Discards the response, remembering statuses so a broken app cannot pass as fast."""

    def __init__(self) -> None:
        self.statuses: set[int] = set()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.statuses.add(message["status"])


async def _run_batch(app: ASGIApp, n: int, send: _Send) -> float:
    """Seconds taken by ``n`` sequential requests."""
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(_SCOPE), _receive, send)
    return time.perf_counter() - start


async def _warm_up(variant: Variant, n: int) -> None:
    send = _Send()
    await _run_batch(variant.app, n, send)
    if send.statuses != {200}:
        raise RuntimeError(f"{variant.name}: GET {BENCH_PATH} answered {sorted(send.statuses)}")


async def run_inprocess(
    variants: Sequence[Variant], rounds: int, iterations: int, warmup: int
) -> list[InProcessResult]:
    """Interleave variants round by round (rotating the order) so drift hits all of them."""
    results = [InProcessResult(v.name, [], 0) for v in variants]
    for variant, result in zip(variants, results, strict=True):
        await _warm_up(variant, warmup)
        result.requests += warmup
    send = _Send()
    for r in range(rounds):
        print(f"bench: in-process round {r + 1}/{rounds}", file=sys.stderr)
        shift = r % len(variants)
        order = list(range(shift, len(variants))) + list(range(shift))
        for i in order:
            variant = variants[i]
            if variant.drain is not None:
                variant.drain()  # nothing of the warm-up or a past round billed here
            gc.collect()  # don't bill one variant for another's garbage
            time.sleep(_PAUSE_S)
            cpu = time.process_time()
            seconds = await _run_batch(variant.app, iterations, send)
            if variant.drain is not None:
                variant.drain()
            cpu = time.process_time() - cpu
            results[i].round_us.append(seconds / iterations * 1e6)
            results[i].round_cpu.append(cpu / iterations * 10_000)
            results[i].requests += iterations
    if send.statuses != {200}:
        raise RuntimeError(f"unexpected statuses during timed rounds: {sorted(send.statuses)}")
    for variant, result in zip(variants, results, strict=True):
        if variant.collect is not None:
            result.produced = variant.collect()
    return results
