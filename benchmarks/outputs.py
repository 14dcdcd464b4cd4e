"""``python -m benchmarks.outputs``: the per-request cost of the metric outputs, all on vs none.

Two Starlette apps behind ``TelemetryMiddleware``, the same configuration (counting span
exporter and log sink, as ``benchmarks.inprocess``) except that one pushes its metrics to every
output the configuration accepts today, every second, to loopback peers in another process:

- Prometheus remote write (``type: prometheus``) and Datadog (``type: datadog``) to an HTTP sink
  that reads each body and answers 2xx;
- OTLP metrics (``type: otlp``, HTTP/protobuf) to the same sink's ``/v1/metrics``;
- StatsD (``collectors.statsd``) to a UDP port the sink reads and discards.

An output whose ``type`` the configuration refuses (not built yet) is left out and named. The
apps are called in-process (no sockets on the request side), rounds alternating, and the run
lasts several seconds, so every output flushes during the timed rounds; the pushes each sink
received are printed with the medians and their ratio. Target: within 5 %: outputs work per
flush, not per request.
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
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.apps import (
    CountingLogSink,
    CountingSpanExporter,
    Variant,
    _starlette,
    telemetry_options,
)
from benchmarks.inprocess import run_inprocess


def serve_sinks() -> None:
    """An HTTP sink (every POST counted per path, answered 200) and a UDP sink; prints both
    ports as one JSON line; ``GET /counts`` answers the counts."""
    counts: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                counts[self.path] = counts.get(self.path, 0) + 1
            self._answer(b"")

        def do_GET(self) -> None:
            with lock:
                self._answer(json.dumps(counts).encode())

        def _answer(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))

    def drain() -> None:
        while True:
            udp.recv(65536)
            with lock:
                counts["statsd packets"] = counts.get("statsd packets", 0) + 1

    threading.Thread(target=drain, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ports = {"http": server.server_address[1], "udp": udp.getsockname()[1]}
    print(json.dumps(ports), flush=True)
    server.serve_forever()


def _candidates(http: str, udp: int) -> dict[str, dict[str, Any]]:
    """Each output as the ``metrics`` section that turns it on."""
    return {
        "remote write": {"exporters": [{"type": "prometheus", "endpoint": f"{http}/api/v1/write",
                                        "interval": "1s"}]},
        "datadog": {"exporters": [{"type": "datadog", "api_key": "bench",
                                   "endpoint": f"{http}/api/v2/series", "interval": "1s"}]},
        "otlp": {"exporters": [{"type": "otlp", "endpoint": http, "interval": "1s"}]},
        "statsd": {"collectors": {"statsd": {"host": f"127.0.0.1:{udp}",
                                             "flush_interval": "1s"}}},
    }  # fmt: skip


def _build(name: str, metrics: dict[str, Any]) -> tuple[Variant, Any]:
    from telemetry_web import Telemetry, TelemetryMiddleware

    options = telemetry_options(CountingSpanExporter(), CountingLogSink())
    options["config"] = {**options["config"], "metrics": metrics}
    telemetry = Telemetry(**options)
    app = _starlette()
    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)
    return Variant(name, app, None), telemetry


def _accepted(candidates: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The merged ``metrics`` section of every output the configuration accepts, and the
    names of those it refuses."""
    from telemetry_web.errors import ConfigError

    merged: dict[str, Any] = {"exporters": [], "collectors": {}}
    refused: list[str] = []
    for name, section in candidates.items():
        try:
            _variant, telemetry = _build(name, section)
        except ConfigError as exc:
            refused.append(f"{name} ({exc.problems[0]})")
            continue
        telemetry.shutdown(1.0)
        merged["exporters"] += section.get("exporters", [])
        merged["collectors"].update(section.get("collectors", {}))
    return merged, refused


def _output_threads_cpu() -> float:
    """CPU seconds used so far by the metric outputs' threads (``/proc/self/task``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for thread in threading.enumerate():
        if not thread.name.startswith("telemetry-web-metrics") or thread.native_id is None:
            continue
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--serve-sinks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sinks:
        serve_sinks()
        return
    rounds, iterations = (10, 1000) if args.quick else (40, 2000)
    sinks = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.outputs", "--serve-sinks"], stdout=subprocess.PIPE
    )
    try:
        assert sinks.stdout is not None
        ports = json.loads(sinks.stdout.readline())
        http = f"http://127.0.0.1:{ports['http']}"
        metrics, refused = _accepted(_candidates(http, ports["udp"]))
        names = [e["type"] for e in metrics["exporters"]] + list(metrics["collectors"])
        none, quiet = _build("no outputs", {})
        every, loud = _build("all outputs", metrics)
        started, cpu_before = time.monotonic(), _output_threads_cpu()
        results = asyncio.run(run_inprocess([none, every], rounds, iterations, 2000))
        elapsed, cpu = time.monotonic() - started, _output_threads_cpu() - cpu_before
        loud.shutdown(5.0)
        quiet.shutdown(5.0)
        with urllib.request.urlopen(f"{http}/counts", timeout=5) as answer:
            counts = json.loads(answer.read())
    finally:
        sinks.terminate()
        sinks.wait(10)
    base, with_outputs = results[0].median_us, results[1].median_us
    print(f"\nMetric outputs, in-process Starlette, median µs/request over {rounds} rounds of "
          f"{iterations} requests ({elapsed:.1f} s, interval 1 s)")  # fmt: skip
    print(f"  outputs on: {', '.join(names) or 'none'}")
    if refused:
        print(f"  left out (refused by the configuration): {'; '.join(refused)}")
    print(f"  pushes received: {json.dumps(counts, sort_keys=True)}")
    print(
        f"  the outputs' threads: {cpu * 1000 / elapsed:.1f} ms CPU per second of run "
        "(both apps share the process, so this work falls on both variants' rounds)"
    )
    print(f"  {'no outputs':<14}{base:8.1f} µs")
    print(f"  {'all outputs':<14}{with_outputs:8.1f} µs")
    ratio = with_outputs / base
    verdict = "within" if ratio <= 1.05 else "NOT within"
    print(f"  ratio {ratio:.3f} ({(ratio - 1) * 100:+.1f} %: {verdict} the 5 % target)")


if __name__ == "__main__":
    main()
