"""The metric history: one merged history from several workers, retention, failures, size."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from telemetry_web import Telemetry
from telemetry_web.store import MetricHistory, MetricSnapshotter, store_for_metrics
from telemetry_web.store._metrics import REPORTER, MetricStore, sample_rows

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_reporter() -> None:
    REPORTER.reset()


_WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from telemetry_web import Telemetry, TelemetryMiddleware

    db, done_dir, me, requests = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    t = Telemetry({"store": {"path": db}, "logging": {"sinks": {"console": False}},
                   "metrics": {"collectors": {"prometheus": {"scrape_interval": "200ms"}}}},
                  service="mp", use_env=False, set_global=False, capture_stdlib_logging=False)

    async def hello(request):
        return PlainTextResponse("hi")

    app = TelemetryMiddleware(Starlette(routes=[Route("/hello", hello)]), telemetry=t)

    async def drive():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(requests):
                await client.get("/hello")
                await asyncio.sleep(0.02)  # over a second: both workers alive, several snapshots

    asyncio.run(drive())
    open(os.path.join(done_dir, me), "w").close()
    while len(os.listdir(done_dir)) < 2:  # both workers' requests are in the files
        time.sleep(0.05)
    time.sleep(0.6)
    t.shutdown()
    """
)


def _totals(db: Path, name: str) -> list[tuple[int, float]]:
    """(snapshot ts, sum over the series named ``name``) in time order."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT p.ts, SUM(p.value) FROM metric_points p JOIN metric_series s "
            "ON s.id = p.series_id WHERE s.name = ? GROUP BY p.ts ORDER BY p.ts",
            (name,),
        ).fetchall()


def test_two_worker_processes_write_one_merged_history(tmp_path: Path) -> None:
    """Two processes sharing PROMETHEUS_MULTIPROC_DIR: one snapshots at a time, the merged
    totals never exceed what was sent (no doubled counts) and end at the exact sum."""
    mp_dir, done = tmp_path / "mp", tmp_path / "done"
    mp_dir.mkdir()
    done.mkdir()
    db = tmp_path / "t.db"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    env.pop("TELEMETRY_CONFIG", None)
    counts = (40, 25)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db), str(done), f"w{i}", str(n)], cwd=ROOT, env=env
        )
        for i, n in enumerate(counts)
    ]
    assert [p.wait(60) for p in procs] == [0, 0]
    totals = _totals(db, "http_requests_total")
    values = [v for _, v in totals]
    assert values[-1] == sum(counts)
    assert values == sorted(values)  # cumulative, never doubled
    assert max(values) == sum(counts)
    with sqlite3.connect(db) as conn:
        times = [r[0] for r in conn.execute("SELECT ts FROM metric_snapshots ORDER BY ts")]
    assert len(times) >= 5
    # one writer at a time: snapshots about an interval apart, never two per interval (the
    # shutdown snapshots of the two workers excepted)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert sum(1 for g in gaps if g < 150) <= 2, gaps
    with MetricHistory(db) as history:
        _, _, rows = history.query("http_requests_total", since=3600, step=3600, now=time.time())
    assert [r.rate for r in rows] == [pytest.approx(sum(counts) / 3600)]


def test_retention_prunes_old_points_and_series(tmp_path: Path) -> None:
    """Points past retention go (manual clock); a series left with none goes too."""
    registry = CollectorRegistry()
    counter = Counter("jobs_total", "Jobs.", ["queue"], registry=registry)
    now = [1_000_000.0]
    snap = MetricSnapshotter(
        [registry], store_path=str(tmp_path / "t.db"), lock_file=str(tmp_path / "lock"),
        interval=15, retention=86400, clock=lambda: now[0],
    )  # fmt: skip
    counter.labels("old").inc()
    assert snap.tick()
    counter.remove("old")  # a series that stops: pruned with its last point
    counter.labels("new").inc(3)
    for _ in range(3):
        now[0] += 43200
        assert snap.tick()
    store = MetricStore(str(tmp_path / "t.db"), retention=86400)
    store.prune_metrics(now=now[0])
    store.close()
    with sqlite3.connect(tmp_path / "t.db") as conn:
        points = conn.execute("SELECT ts FROM metric_points ORDER BY ts").fetchall()
        snapshots = conn.execute("SELECT COUNT(*) FROM metric_snapshots").fetchone()[0]
        series = conn.execute("SELECT labels FROM metric_series").fetchall()
    cutoff = now[0] - 86400  # the snapshot at the cutoff itself is kept
    assert {t for (t,) in points} == {int((cutoff + 43200 * i) * 1000) for i in range(3)}
    assert snapshots == 3
    assert series == [('{"queue":"new"}',)]
    snap.stop()


def test_retention_comes_from_the_configuration(tmp_path: Path) -> None:
    """``metrics.collectors.prometheus.retention`` is accepted now; the store's is the
    default; with the store off there is no history."""
    base: dict[str, Any] = {
        "store": {"path": str(tmp_path / "t.db")}, "logging": {"sinks": {"console": False}}
    }  # fmt: skip
    kw: dict[str, Any] = {"use_env": False, "set_global": False, "capture_stdlib_logging": False}
    t = Telemetry({**base, "metrics": {"collectors": {"prometheus": {"retention": "2d"}}}}, **kw)
    assert t._metric_history.store.retention == 2 * 86400
    assert t._metric_history.interval == 15
    t.shutdown()
    t = Telemetry({**base, "store": {**base["store"], "retention": "3d"}}, **kw)
    assert t._metric_history.store.retention == 3 * 86400
    t.shutdown()
    t = Telemetry({**base, "store": {**base["store"], "enabled": "false"}}, **kw)
    assert t._metric_history is None
    assert not store_for_metrics(t.settings)
    t.shutdown()


def test_only_the_lock_holder_snapshots_and_a_dead_holder_releases(tmp_path: Path) -> None:
    """A second snapshotter on the same lock waits; it takes over once the first is gone."""
    registry = CollectorRegistry()
    Counter("a_total", "A.", registry=registry).inc()
    kw: dict[str, Any] = {"store_path": str(tmp_path / "t.db"), "lock_file": str(tmp_path / "lock"),
                          "interval": 15, "retention": 3600}  # fmt: skip
    first, second = MetricSnapshotter([registry], **kw), MetricSnapshotter([registry], **kw)
    assert first.tick()
    assert not second.tick()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,sys,time; f=open(sys.argv[1],'a'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(60)", str(tmp_path / "lock2")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    third = MetricSnapshotter([registry], **{**kw, "lock_file": str(tmp_path / "lock2")})
    assert not third.tick()
    holder.kill()
    holder.wait()
    holder.stdout.close()
    assert third.tick()  # the kernel dropped the killed holder's lock
    first.stop()
    assert second.tick()
    second.stop()
    third.stop()


def test_an_unwritable_store_is_reported_once_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store under a regular file: one stderr line per period, the samples counted dropped."""
    (tmp_path / "file").write_text("")
    registry = CollectorRegistry()
    Counter("a_total", "A.", registry=registry).inc()
    dropped = Counter("d_total", "D.", ["exporter", "reason"], registry=CollectorRegistry())
    snap = MetricSnapshotter(
        [registry], store_path=str(tmp_path / "file" / "t.db"), lock_file=str(tmp_path / "lock"),
        interval=15, retention=3600, dropped=dropped,
    )  # fmt: skip
    for _ in range(3):
        assert not snap.tick()
    err = capsys.readouterr().err
    assert err.count("Metric history unavailable: Not a directory") == 1
    assert "requests are still served, 1 metric samples dropped" in err
    assert dropped.labels("store", "store_unavailable")._value.get() == 3
    snap.stop()


def test_snapshot_rows_skip_created_and_duplicates() -> None:
    """``*_created`` samples are left out; a family seen twice (two registries) is kept once;
    histograms keep their bucket, sum and count series."""
    registry = CollectorRegistry()
    Counter("c_total", "C.", registry=registry).inc(2)
    Histogram("h_seconds", "H.", buckets=[0.1, 1], registry=registry).observe(0.5)
    rows, cut = sample_rows([*registry.collect(), *registry.collect()])
    assert cut == 0
    assert [(r[0], r[1], r[3], r[5]) for r in rows] == [
        ("c_total", "c_total", "{}", 2.0),
        ("h_seconds", "h_seconds_bucket", '{"le":"0.1"}', 0.0),
        ("h_seconds", "h_seconds_bucket", '{"le":"1.0"}', 1.0),
        ("h_seconds", "h_seconds_bucket", '{"le":"+Inf"}', 1.0),
        ("h_seconds", "h_seconds_count", "{}", 1.0),
        ("h_seconds", "h_seconds_sum", "{}", 0.5),
    ]
    assert generate_latest(registry)  # the registry still renders as usual


def test_a_forked_child_snapshots_on_its_own(tmp_path: Path) -> None:
    """After fork() the child's thread runs again and never shares the parent's lock."""
    registry = CollectorRegistry()
    Counter("a_total", "A.", registry=registry).inc()
    snap = MetricSnapshotter(
        [registry], store_path=str(tmp_path / "t.db"), lock_file=str(tmp_path / "lock"),
        interval=0.1, retention=3600,
    )  # fmt: skip
    assert snap.tick()  # the parent holds the lock
    pid = os.fork()
    if pid == 0:  # the child: the lock stays the parent's
        code = 0 if not snap.tick() else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    snap.stop()
