"""``python -m benchmarks.soak`` (``make soak``): memory over a long run with a working, a hanging
and a refusing OTLP collector.

Each backend runs in a child process of its own (so one run's heap cannot hide another's): the
Starlette endpoint of the main benchmark, behind ``TelemetryMiddleware``, is called in-process
``SOAK_REQUESTS`` times (default 200,000), every request sampled in and exported with OTLP over
HTTP/protobuf to a collector on loopback:

- working: answers every export 200 with an empty ``ExportTraceServiceResponse``;
- hanging: accepts connections and reads what it is sent, but never answers;
- refusing: a closed port.

The resident set size is read from ``/proc/self/statm`` after a warm-up (``SOAK_WARMUP``
requests, default 1,000: imports and caches done, queues not yet filled, so a queue that a
hanging backend fills counts in the growth) and at the end; the table gives the growth per 1,000
requests and in total, the spans the collector received and the spans counted as dropped
(``telemetry_spans_dropped_total``, by reason). The request log line goes to an in-memory
counting sink. Goal (issue 12): the hanging and refusing runs grow at most 5 MB more than the
working one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BACKENDS = ("working", "hanging", "refusing")
GOAL_BYTES = 5 * 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """The resident set size of this process (``/proc/self/statm``: pages, second field)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


# --- collectors -----------------------------------------------------------------------------


class WorkingCollector:
    """OTLP/HTTP on loopback: counts the spans of each request and answers 200."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        answer = ExportTraceServiceResponse().SerializeToString()
        self.spans = 0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                collector.spans += sum(
                    len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
                )
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"


class HangingCollector:
    """Accepts every connection and reads what is sent, never answering."""

    def __init__(self) -> None:
        self.spans = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1/traces"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self._listener.accept()
            threading.Thread(target=self._swallow, args=(conn,), daemon=True).start()

    @staticmethod
    def _swallow(conn: socket.socket) -> None:
        with conn:
            while conn.recv(65536):
                pass


class RefusingCollector:
    """A port nothing listens on: every connection is refused."""

    def __init__(self) -> None:
        self.spans = 0
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1/traces"


COLLECTORS = {"working": WorkingCollector, "hanging": HangingCollector,
              "refusing": RefusingCollector}  # fmt: skip


# --- one backend, in this process -----------------------------------------------------------


def run_backend(backend: str, requests: int, warmup: int) -> dict[str, Any]:
    """Serve ``requests`` requests with OTLP to ``backend``; the figures as a dict."""
    from benchmarks.apps import CountingLogSink
    from benchmarks.apps import _starlette as starlette_endpoint_app
    from benchmarks.tracing import _run
    from telemetry_web import Telemetry, TelemetryMiddleware

    collector = COLLECTORS[backend]()
    config = {
        "service": "soak",
        "logging": {"sinks": {"console": False}},
        "store": {"enabled": "false"},
        "tracing": {
            "sampling": "always_on",
            "exporters": {"otlp": {"endpoint": collector.url, "timeout": "10s"}},
        },
    }
    sink = CountingLogSink()
    telemetry = Telemetry(config, log_sinks=[sink], use_env=False, set_global=False,
                          capture_stdlib_logging=False)  # fmt: skip
    app = starlette_endpoint_app()
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)

    async def serve(count: int) -> None:
        step = 1000
        for done in range(0, count, step):
            await _run(app, min(step, count - done))
            await asyncio.sleep(0)  # the exporter and log threads get the GIL now and then

    asyncio.run(serve(warmup))
    start_rss = rss_bytes()
    started = time.monotonic()
    asyncio.run(serve(requests - warmup))
    end_rss = rss_bytes()
    seconds = time.monotonic() - started
    dropped: dict[str, float] = {}
    for metric in telemetry.registry.collect():
        for sample in metric.samples:
            if sample.name == "telemetry_spans_dropped_total" and sample.value:
                reason = sample.labels["reason"]
                dropped[reason] = dropped.get(reason, 0) + sample.value
    telemetry.shutdown(timeout=2.0)
    for metric in telemetry.registry.collect():
        for sample in metric.samples:
            if sample.name == "telemetry_spans_dropped_total" and sample.labels["reason"] == (
                "shutdown"
            ):
                dropped["shutdown"] = sample.value
    measured = requests - warmup
    return {
        "backend": backend,
        "requests": requests,
        "measured": measured,
        "seconds": seconds,
        "start_rss": start_rss,
        "end_rss": end_rss,
        "growth": end_rss - start_rss,
        "per_1000": (end_rss - start_rss) / measured * 1000,
        "exported": collector.spans,
        "dropped": dropped,
        "log_lines": sink.lines,
    }


# --- the table ------------------------------------------------------------------------------


def _kb(value: float) -> str:
    return f"{value / 1024:+,.1f} KB"


def _mb(value: float) -> str:
    return f"{value / 1024 / 1024:+,.2f} MB"


def print_table(results: list[dict[str, Any]]) -> bool:
    print(f"Soak: {results[0]['requests']:,} requests per backend "
          f"(RSS measured after {results[0]['requests'] - results[0]['measured']:,})")  # fmt: skip
    header = ("backend", "RSS at start", "growth / 1,000 req", "growth total", "exported",
              "dropped", "req/s")  # fmt: skip
    rows = []
    for r in results:
        dropped = ", ".join(f"{k} {int(v):,}" for k, v in sorted(r["dropped"].items())) or "0"
        rows.append((r["backend"], f"{r['start_rss'] / 1024 / 1024:,.1f} MB", _kb(r["per_1000"]),
                     _mb(r["growth"]), f"{r['exported']:,}", dropped,
                     f"{r['measured'] / r['seconds']:,.0f}"))  # fmt: skip
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    by_name = {r["backend"]: r for r in results}
    ok = True
    if "working" in by_name:
        base = by_name["working"]["growth"]
        for name in ("hanging", "refusing"):
            if name in by_name:
                extra = by_name[name]["growth"] - base
                within = extra <= GOAL_BYTES
                ok = ok and within
                print(f"{name} vs working: {_mb(extra)} "
                      f"({'within' if within else 'OVER'} the +5 MB goal)")  # fmt: skip
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, help="run one backend in this process")
    parser.add_argument("--requests", type=int,
                        default=int(os.environ.get("SOAK_REQUESTS", "200000")))  # fmt: skip
    parser.add_argument("--warmup", type=int, default=None)
    args = parser.parse_args(argv)
    requests = args.requests
    warmup = args.warmup
    if warmup is None:
        warmup = int(os.environ.get("SOAK_WARMUP", "1000"))
    warmup = min(warmup, requests - 1000) if requests > 1000 else 0
    if args.backend:
        print(json.dumps(run_backend(args.backend, requests, warmup)))
        return 0
    results = []
    for backend in BACKENDS:
        print(f"soak: {backend} collector, {requests:,} requests...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.soak", "--backend", backend,
             "--requests", str(requests), "--warmup", str(warmup)],
            check=True, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    return 0 if print_table(results) else 1


if __name__ == "__main__":
    sys.exit(main())
