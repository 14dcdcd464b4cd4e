"""``/metrics`` under gunicorn workers: scrape time and size as the number of routes grows.

For R routes (10, 200, 1000; 10 and 200 with --quick), a Flask app with R rules
``/r<i>/<int:item>`` (``item`` 0 answers 404) runs under real ``gunicorn -w 4`` workers in
multiprocess mode; every route is requested once with a 200 and once with a 404, then
``/metrics`` is scraped several times (each scrape is answered by whichever worker accepts
it). Reported: the median and the slowest scrape, the body's bytes, the samples carrying a route
label per (route, status), and the multiprocess directory's files.

Variants: telemetry-web (its Flask extension, ``-c python:telemetry_web.gunicorn``) and
prometheus-flask-exporter (``GunicornInternalPrometheusMetrics`` grouped by URL rule, its
documented ``child_exit`` hook), both over prometheus-client's memory-mapped files.

    .venv/bin/python -m benchmarks.scrape [--quick] [--routes 1000] [--keep DIR]

The ``*_app`` functions are gunicorn entry points (``'benchmarks.scrape:telemetry_app(200)'``).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, abort

HOST = "127.0.0.1"
WORKERS = 4
_ROUTE_LABEL = re.compile(r'="/r\d+/<int:item>"')
TELEMETRY_WEB = "telemetry-web"
PEER = "prometheus-flask-exporter"
_PEER_CONF = """
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

def child_exit(server, worker):
    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
"""


def rule(i: int) -> str:
    return f"/r{i}/<int:item>"


def _flask(routes: int) -> Flask:
    app = Flask("bench_scrape")

    def view(item: int) -> str:
        if item == 0:
            abort(404)
        return "ok"

    for i in range(routes):
        app.add_url_rule(rule(i), endpoint=f"r{i}", view_func=view)
    return app


def telemetry_app(routes: int) -> Flask:
    """The app with telemetry-web's Flask extension (only metrics are looked at)."""
    from telemetry_web.flask import FlaskTelemetry

    app = _flask(routes)
    FlaskTelemetry(
        app, service="bench", use_env=False, capture_stdlib_logging=False,
        config={"logging": {"sinks": {"console": False}}, "store": {"enabled": "false"}},
    )  # fmt: skip
    return app


def peer_app(routes: int) -> Flask:
    """The app with prometheus-flask-exporter's multiprocess extension for gunicorn."""
    from prometheus_flask_exporter.multiprocess import (  # type: ignore[import-untyped]
        GunicornInternalPrometheusMetrics,
    )

    app = _flask(routes)
    GunicornInternalPrometheusMetrics(app, group_by="url_rule")
    return app


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str, timeout: float = 120.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_ready(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log.read_text()[-2000:]}")
        try:
            _get(port, "/r0/1", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer:\n{log.read_text()[-2000:]}")


def _route_samples(body: str) -> tuple[int, int]:
    """(samples in the body, samples with a label whose value is one of the app's rules)."""
    total = with_route = 0
    for line in body.splitlines():
        if line and not line.startswith("#"):
            total += 1
            with_route += _ROUTE_LABEL.search(line) is not None
    return total, with_route


def run_variant(name: str, routes: int, scrapes: int, keep: str | None) -> dict[str, Any]:
    """Serve, send 2R requests, scrape ``scrapes`` times; the row's numbers."""
    work = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    mp_dir = work / "multiproc"
    mp_dir.mkdir()
    port = _free_port()
    if name == TELEMETRY_WEB:
        config, entry = (
            "python:telemetry_web.gunicorn",
            f"benchmarks.scrape:telemetry_app({routes})",
        )
    else:
        (work / "peer_conf.py").write_text(_PEER_CONF)
        config, entry = str(work / "peer_conf.py"), f"benchmarks.scrape:peer_app({routes})"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    log = work / "gunicorn.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", config, "-w", str(WORKERS),
             "-b", f"{HOST}:{port}", "--timeout", "300", "--log-level", "warning", entry],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_ready(port, server, log)
        for i in range(routes):
            for item, expected in ((1, 200), (0, 404)):
                status, _ = _get(port, f"/r{i}/{item}")
                if status != expected:
                    raise RuntimeError(f"/r{i}/{item} answered {status}, not {expected}")
        times: list[float] = []
        body = b""
        for _ in range(scrapes):
            start = time.perf_counter()
            status, body = _get(port, "/metrics")
            times.append(time.perf_counter() - start)
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
        files = list(mp_dir.glob("*.db"))
        total, with_route = _route_samples(body.decode())
        if keep:
            shutil.copytree(mp_dir, Path(keep) / f"{name}-{routes}", dirs_exist_ok=True)
        return {
            "variant": name, "routes": routes, "median_ms": statistics.median(times) * 1000,
            "max_ms": max(times) * 1000, "bytes": len(body), "samples": total,
            "per_route_status": with_route / (2 * routes), "files": len(files),
            "dir_bytes": sum(f.stat().st_size for f in files),
        }  # fmt: skip
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="R = 10 and 200, 5 scrapes")
    parser.add_argument("--routes", type=int, action="append", help="R (repeatable)")
    parser.add_argument("--variant", choices=[TELEMETRY_WEB, PEER], action="append")
    parser.add_argument("--scrapes", type=int, help="scrapes per row (default 9; 5 with --quick)")
    parser.add_argument("--keep", help="copy each multiprocess directory under this folder")
    args = parser.parse_args(argv)
    route_counts = args.routes or ([10, 200] if args.quick else [10, 200, 1000])
    scrapes = args.scrapes or (5 if args.quick else 9)
    variants = args.variant or [TELEMETRY_WEB, PEER]
    print(f"/metrics scrape, Flask under gunicorn -w {WORKERS}, each route x 200/404, "
          f"{scrapes} scrapes per row")  # fmt: skip
    header = (f"{'variant':<26} {'R':>5} {'median':>10} {'slowest':>10} {'body':>9} "
              f"{'samples':>8} {'per (route,status)':>19} {'dir files':>10} "
              f"{'dir size':>9}")  # fmt: skip
    print(header)
    print("-" * len(header))
    runner: Callable[[str, int, int, str | None], dict[str, Any]] = run_variant
    for routes in route_counts:
        for variant in variants:
            row = runner(variant, routes, scrapes, args.keep)
            print(
                f"{row['variant']:<26} {row['routes']:>5} {row['median_ms']:>8.1f}ms "
                f"{row['max_ms']:>8.1f}ms {_mb(row['bytes']):>9} {row['samples']:>8} "
                f"{row['per_route_status']:>19.1f} {row['files']:>10} {_mb(row['dir_bytes']):>9}",
                flush=True,
            )


if __name__ == "__main__":
    main()
