"""``python -m benchmarks.tracing``: per-request cost with tracing sampled in, sampled out, and
rate-limited under a load above the limit, as ratios to the bare app in the same run.

The Starlette endpoint of the main benchmark is called in-process (no server), rounds
alternating between variants. Every variant also records metrics and the request log line;
only the sampling decision differs:

- sampled in: ``always_on`` (every request a recorded, exported span);
- sampled out: ``always_off`` (a non-recording span: the trace id still reaches the log line);
- rate-limited: ``rate_limiting {rate: 50}`` while the loop runs far faster than 50 requests/s,
  so almost every request is sampled out by the token bucket.

The spans column counts what the counting exporter received per request, so a variant that
samples in more (or less) than it should shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette

from benchmarks.apps import BENCH_PATH, CountingLogSink, CountingSpanExporter
from benchmarks.apps import _starlette as starlette_endpoint_app
from telemetry_web import Telemetry, TelemetryMiddleware

SAMPLING: dict[str, Any] = {
    "sampled in": "always_on",
    "sampled out": "always_off",
    "rate-limited (50/s)": {"rate_limiting": {"rate": 50}},
}

_SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
    "scheme": "http", "path": BENCH_PATH, "raw_path": BENCH_PATH.encode(), "root_path": "",
    "query_string": b"", "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
}  # fmt: skip


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(_message: dict[str, Any]) -> None:
    return None


async def _run(app: Any, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await app(dict(_SCOPE), _receive, _send)
    return (time.perf_counter() - started) / count * 1e6


def _variant(sampling: Any) -> tuple[Starlette, Telemetry, CountingSpanExporter]:
    exporter = CountingSpanExporter()
    telemetry = Telemetry(
        service="bench", environment="bench", use_env=False, capture_stdlib_logging=False,
        config={"logging": {"sinks": {"console": False}}, "tracing": {"sampling": sampling}},
        span_exporters=[exporter], log_sinks=[CountingLogSink()],
    )  # fmt: skip
    app = starlette_endpoint_app()
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    return app, telemetry, exporter


async def measure(rounds: int, per_round: int) -> list[tuple[str, float, float | None]]:
    bare = starlette_endpoint_app()
    variants = {name: _variant(sampling) for name, sampling in SAMPLING.items()}
    apps: dict[str, Any] = {"bare": bare, **{n: v[0] for n, v in variants.items()}}
    for app in apps.values():
        await _run(app, per_round // 4)  # warm-up
    timings: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(rounds):
        for name, app in apps.items():
            timings[name].append(await _run(app, per_round))
    total = per_round // 4 + rounds * per_round
    rows: list[tuple[str, float, float | None]] = [
        ("bare", statistics.median(timings["bare"]), None)
    ]
    for name, (_app, telemetry, exporter) in variants.items():
        telemetry.shutdown()
        rows.append((name, statistics.median(timings[name]), exporter.spans / total))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, for a smoke run")
    args = parser.parse_args(argv)
    rounds, per_round = (3, 500) if args.quick else (7, 2000)
    rows = asyncio.run(measure(rounds, per_round))
    bare = rows[0][1]
    print(f"tracing: median of {rounds} rounds x {per_round} requests, in-process (ASGI)")
    print(f"{'variant':22} {'µs/req':>8} {'+µs':>8} {'x bare':>7} {'spans/req':>10}")
    for name, micros, spans in rows:
        shown = "-" if spans is None else f"{spans:.3f}"
        print(f"{name:22} {micros:8.1f} {micros - bare:+8.1f} {micros / bare:6.2f}x {shown:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
