"""Disk use of the metric history: a day of snapshots at the default 15 s interval.

A realistic registry (a Telemetry's own: 12 routes, GET and some POST, a few 404s and 500s,
the duration and size histograms, requests in progress, the drop counters, and
prometheus-client's process and GC metrics) is snapshotted 5,760 times with a manual clock,
traffic recorded between snapshots. Prints the file size, the series and the bytes per series
per day::

    .venv/bin/python -m benchmarks.metric_history_size [hours]   # default 24
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import tempfile
import time

from prometheus_client import REGISTRY

from telemetry_web import Telemetry
from telemetry_web.store import MetricSnapshotter

INTERVAL = 15.0
ROUTES = [f"/api/v1/resource{i}/{{id}}" for i in range(12)]


def main(hours: float = 24.0) -> None:
    directory = tempfile.mkdtemp(prefix="history-size-")
    db = os.path.join(directory, "t.db")
    telemetry = Telemetry(
        {"store": {"enabled": "false"}, "logging": {"sinks": {"console": False}}},
        service="orders", use_env=False, set_global=False, capture_stdlib_logging=False,
    )  # fmt: skip
    http = telemetry.http_metrics
    assert http is not None
    now = [time.time() - hours * 3600]
    snapshotter = MetricSnapshotter(
        [telemetry.registry, REGISTRY], store_path=db, lock_file=db + ".lock",
        interval=INTERVAL, retention=30 * 86400, clock=lambda: now[0],
    )  # fmt: skip
    rng = random.Random(7)
    snapshots = int(hours * 3600 / INTERVAL)
    started = time.perf_counter()
    for _ in range(snapshots):
        for i, route in enumerate(ROUTES):
            for _ in range(rng.randint(0, 6)):
                status = (
                    500 if rng.random() < 0.02 else (404 if i < 2 and rng.random() < 0.1 else 200)
                )
                method = "POST" if i < 4 and rng.random() < 0.3 else "GET"
                http.record(method, route, status, rng.lognormvariate(-3, 1),
                            rng.randint(0, 2000), rng.randint(100, 50_000), None)  # fmt: skip
            http.in_progress("GET", route, "http")
        snapshotter.tick()
        now[0] += INTERVAL
    snapshotter.stop()
    elapsed = time.perf_counter() - started
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        series = conn.execute("SELECT COUNT(*) FROM metric_series").fetchone()[0]
        points = conn.execute("SELECT COUNT(*) FROM metric_points").fetchone()[0]
        label_sets = conn.execute(
            "SELECT COUNT(DISTINCT family || json_remove(labels, '$.le')) FROM metric_series"
        ).fetchone()[0]
    size = os.path.getsize(db)
    days = hours / 24
    print(f"{snapshots} snapshots every {INTERVAL:g}s ({hours:g} h) in {elapsed:.1f}s")
    print(f"file: {size / 1e6:.1f} MB, {series} series (sample name + labels), "
          f"{label_sets} label sets, {points} points")  # fmt: skip
    print(f"bytes per point: {size / points:.1f}")
    print(f"bytes per series per day: {size / series / days:,.0f}")
    print(f"bytes per label set per day: {size / label_sets / days:,.0f}")
    telemetry.shutdown()


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 24.0)
