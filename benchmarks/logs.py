"""``python -m benchmarks.logs``: the cost of one log line, telemetry-web's sinks vs structlog's.

The same line, ``log.info("Processing request", method="GET", path="/api/users/42",
user_id=42)``, is logged ``--lines`` times per round by each variant, rounds alternating:

- structlog's own JSON line to a file: ``TimeStamper`` + ``add_log_level`` + ``JSONRenderer``
  into a ``WriteLogger`` on the file, everything on the caller's thread;
- telemetry-web with the file sink: the caller builds the event, the writer thread processes,
  renders and appends it (``O_APPEND`` + ``flock`` per batch);
- telemetry-web with the Elasticsearch sink: the same, then ``_bulk`` requests to a loopback
  receiver running in another process (it only reads the bodies and answers "stored").

Per line: what the caller pays (the timed loop, wall clock: it includes the writer thread's turns
on the GIL while the loop runs), the CPU time of the caller's thread alone (the call itself),
what delivering it costs end to end (the loop and a flush until the file holds it / the receiver
stored it, wall clock), and the CPU time of the whole process (caller and background threads).
Ratios are to structlog's line, same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LINE_KW: dict[str, Any] = {"method": "GET", "path": "/api/users/42", "user_id": 42}


@dataclass
class Result:
    name: str
    caller_us: list[float] = field(default_factory=list)
    caller_cpu_us: list[float] = field(default_factory=list)  # the caller's thread only
    delivered_us: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


@dataclass
class Variant:
    name: str
    log: Any
    deliver: Callable[[], None]  # returns once every line logged so far is delivered
    count: Callable[[], int]  # lines delivered so far
    close: Callable[[], None]


# --- the loopback receiver (a separate process) --------------------------------------------------


def serve_receiver() -> None:
    """Answer every ``_bulk`` request as stored; report the documents count on ``GET /count``."""
    stored = [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as Elasticsearch: no delayed-ACK stall per answer

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            stored[0] += body.count(b"\n") // 2
            self._answer(b'{"took":1,"errors":false}')

        def do_GET(self) -> None:
            self._answer(str(stored[0]).encode())

        def _answer(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def start_receiver() -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.logs", "--receiver"], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def received(port: int) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/count")
    count = int(conn.getresponse().read())
    conn.close()
    return count


# --- the variants ----------------------------------------------------------------------------


def structlog_variant(directory: Path) -> Variant:
    import logging

    import structlog

    out = open(directory / "structlog.log", "w")  # noqa: SIM115  (closed by close())
    # A private logger: structlog.configure() is global, and telemetry-web uses structlog too.
    log = structlog.wrap_logger(
        structlog.WriteLogger(file=out),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind(logger="api", service="bench")
    path = directory / "structlog.log"
    return Variant(
        "structlog JSON line to a file (caller's thread)",
        log,
        deliver=lambda: None,  # WriteLogger writes and flushes each line in the call
        count=lambda: _count_lines(path),
        close=out.close,
    )


def telemetry_variant(
    name: str, sinks: dict[str, Any], count: Callable[[], int], lines: int
) -> Variant:
    from telemetry_web import Telemetry

    telemetry = Telemetry(
        {
            "service": "bench",
            "tracing": {"enabled": False},
            "metrics": {"enabled": False},
            # room for a whole round: the benchmark measures delivery, not drops
            "logging": {
                "request_log": False,
                "queue_size": lines * 2,
                "queue_bytes": lines * 4096,
                "sinks": {"console": False, **sinks},
            },
        },
        use_env=False,
        set_global=False,
        capture_stdlib_logging=False,
    )

    def deliver() -> None:
        assert telemetry.pipeline is not None
        if not telemetry.pipeline.flush(60):
            raise RuntimeError(f"{name}: not delivered within 60 s")

    return Variant(name, telemetry.get_logger("api"), deliver, count, telemetry.shutdown)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as source:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: source.read(1 << 20), b""))


# --- measuring -------------------------------------------------------------------------------


def measure(variant: Variant, lines: int, result: Result) -> None:
    before = variant.count()
    log = variant.log
    info = log.info
    gc.collect()
    cpu = time.process_time()
    own = time.thread_time()
    started = time.perf_counter()
    for _ in range(lines):
        info("Processing request", **LINE_KW)
    called = time.perf_counter()
    own = time.thread_time() - own
    variant.deliver()
    delivered = time.perf_counter()
    cpu = time.process_time() - cpu
    got = variant.count() - before
    if got != lines:
        raise RuntimeError(f"{variant.name}: {got} of {lines} lines delivered")
    result.caller_us.append((called - started) / lines * 1e6)
    result.caller_cpu_us.append(own / lines * 1e6)
    result.delivered_us.append((delivered - started) / lines * 1e6)
    result.cpu_us.append(cpu / lines * 1e6)


def run(lines: int, rounds: int) -> list[Result]:
    receiver, port = start_receiver()
    directory = Path(tempfile.mkdtemp(prefix="telemetry-web-logs-bench-"))
    file_path = directory / "app.log"
    variants = [
        structlog_variant(directory),
        telemetry_variant(
            "telemetry-web, file sink",
            {"file": {"path": str(file_path), "rotation": {"max_size": "1GB"}}},
            lambda: _count_lines(file_path),
            lines,
        ),
        telemetry_variant(
            "telemetry-web, Elasticsearch sink (loopback receiver)",
            {"elasticsearch": {"url": f"http://127.0.0.1:{port}", "flush_interval": "200ms",
                               "max_buffer": lines * 2,
                               "max_buffer_bytes": lines * 4096}},
            lambda: received(port),
            lines,
        ),
    ]  # fmt: skip
    results = [Result(v.name) for v in variants]
    try:
        for variant, result in zip(variants, results, strict=True):  # warm-up
            measure(variant, min(lines, 2_000), Result(result.name))
        for i in range(rounds):
            print(f"round {i + 1}/{rounds}", file=sys.stderr)
            for variant, result in zip(variants, results, strict=True):
                measure(variant, lines, result)
    finally:
        for variant in variants:
            variant.close()
        receiver.terminate()
        receiver.wait()
        for leftover in directory.iterdir():
            leftover.unlink()
        directory.rmdir()
    return results


def report(results: list[Result], lines: int, rounds: int) -> str:
    base = results[0]
    rows = [
        f"One log line ({lines:,} lines x {rounds} rounds, medians; ratios to structlog's line)",
        "",
        "| variant | caller µs/line | vs structlog | caller's thread CPU µs/line | vs structlog "
        "| delivered µs/line | vs structlog | CPU µs/line | vs structlog |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        series = (r.caller_us, r.caller_cpu_us, r.delivered_us, r.cpu_us)
        base_series = (base.caller_us, base.caller_cpu_us, base.delivered_us, base.cpu_us)
        med = [statistics.median(x) for x in series]
        ref = [statistics.median(x) for x in base_series]
        cells = " | ".join(f"{m:.2f} | {m / b:.2f}x" for m, b in zip(med, ref, strict=True))
        rows.append(f"| {r.name} | {cells} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=50_000, help="lines per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10,000 lines x 3 rounds")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        serve_receiver()
        return
    lines, rounds = (10_000, 3) if args.quick else (args.lines, args.rounds)
    os.environ.pop("TELEMETRY_CONFIG", None)
    print(report(run(lines, rounds), lines, rounds))
    print(json.dumps({"lines": lines, "rounds": rounds}), file=sys.stderr)


if __name__ == "__main__":
    main()
