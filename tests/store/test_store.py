"""The embedded store: concurrent writers, retention, an unwritable path, the engine's default."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.store import (
    LogQuery,
    SQLiteStore,
    StoreSpanExporter,
    TraceQuery,
    TracingManager,
)
from telemetry_web.store._db import REPORTER
from telemetry_web.testing import InMemoryLogSink

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_reporter() -> None:
    REPORTER.reset()


def _telemetry(path: Path, **config: object) -> Telemetry:
    return Telemetry(
        {"store": {"path": str(path), **config}, "logging": {"sinks": {"console": False}}},
        service="store-test",
        use_env=False,
        set_global=False,
        capture_stdlib_logging=False,
    )


_WRITER = textwrap.dedent(
    """
    import sys
    from telemetry_web import Telemetry
    path, name = sys.argv[1], sys.argv[2]
    t = Telemetry({"store": {"path": path}, "logging": {"sinks": {"console": False}}},
                  service=name, use_env=False, set_global=False, capture_stdlib_logging=False)
    log, tracer = t.get_logger("w"), t.get_tracer("w")
    for i in range(300):
        with tracer.start_span(f"op-{i}"):
            log.info("step", i=i)
        if i % 50 == 0:
            t.flush()
    t.shutdown()
    """
)


def test_two_writer_processes_and_a_reader(tmp_path: Path) -> None:
    """Two processes write spans and logs to one file while a reader polls it; nothing is lost."""
    db = tmp_path / "t.db"
    SQLiteStore(str(db), retention=3600).write()  # create the schema before the reader opens it
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(db), f"w{i}"], cwd=ROOT)
        for i in range(2)
    ]
    reads = 0
    with TracingManager(db) as reader:
        while any(p.poll() is None for p in procs):
            reader.logs(LogQuery(limit=5))
            reader.list_traces(TraceQuery(limit=5))
            reads += 1
            time.sleep(0.01)
    assert [p.wait(30) for p in procs] == [0, 0]
    assert reads > 0
    with TracingManager(db) as reader:
        for name in ("w0", "w1"):
            assert len(reader.logs(LogQuery(service=name, limit=1000))) == 300
            assert len(reader.list_traces(TraceQuery(service=name, limit=1000))) == 300


def test_logs_tail_follow_sees_two_live_writers(tmp_path: Path) -> None:
    """`telemetry logs tail --follow` running while two processes write prints lines of both,
    each exactly once, in JSON."""
    import json

    db = tmp_path / "t.db"
    SQLiteStore(str(db), retention=3600).write()
    follower = subprocess.Popen(
        [sys.executable, "-m", "telemetry_web.cli", "logs", "tail", "--follow", "--json",
         "--interval", "0.05s", "--follow-for", "8s", "--lines", "1", "--store", str(db)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.0)  # the follower has read the (empty) store once
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(db), f"w{i}"], cwd=ROOT)
        for i in range(2)
    ]
    assert [p.wait(60) for p in writers] == [0, 0]
    # The follower stops by itself (--follow-for), writing out everything it printed.
    out, _err = follower.communicate(timeout=60)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    steps = [(line["service"], line["fields"]["i"] if "fields" in line else line.get("i"))
             for line in lines if line.get("event") == "step"]  # fmt: skip
    assert sorted(steps) == sorted({(f"w{w}", i) for w in range(2) for i in range(300)})


def test_retention_prunes_old_rows(tmp_path: Path) -> None:
    """Spans and log lines older than the retention are deleted by the writer's prune."""
    db = tmp_path / "t.db"
    store = SQLiteStore(str(db), retention=3600)
    old, new = time.time() - 7200, time.time()

    def span(trace: str, start: float) -> tuple[object, ...]:
        return (trace, "1" * 16, None, "GET /", "server", "svc", "/", 200, int(start * 1e9),
                1000, "unset", None, "{}", "[]", "{}")  # fmt: skip

    def line(ts: float) -> tuple[object, ...]:
        return (ts, "info", 20, "l", "svc", "e", None, None, None, "{}")

    store.write(spans=[span("a" * 32, old), span("b" * 32, new)], logs=[line(old), line(new)])
    # the first write pruned before its rows existed; the next prune (a minute later) would not
    store.prune()
    with TracingManager(db) as reader:
        assert [t.trace_id for t in reader.list_traces()] == ["b" * 32]
        assert [round(r.timestamp) for r in reader.logs()] == [round(new)]


def test_unwritable_store_requests_still_served_and_one_error_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """With the store under a regular file, requests succeed, drops are counted, and stderr
    gets one ``Log store unavailable`` line."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    telemetry = _telemetry(blocker / "t.db")

    async def hello(request: object) -> PlainTextResponse:
        telemetry.get_logger("app").info("hello")
        return PlainTextResponse("hi")

    app = TelemetryMiddleware(Starlette(routes=[Route("/", hello)]), telemetry=telemetry)

    async def drive() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            codes = []
            for _ in range(3):
                codes.append((await client.get("/")).status_code)
                telemetry.flush(timeout=3)
            return codes

    import asyncio

    assert asyncio.run(drive()) == [200, 200, 200]
    telemetry.shutdown()
    err = capfd.readouterr().err
    assert err.count("Log store unavailable") == 1, err
    assert "Not a directory" in err
    registry = telemetry.registry
    labels = {"service": "store-test", "environment": "development"}
    logs_dropped = registry.get_sample_value(
        "telemetry_log_events_dropped_total",
        {**labels, "sink": "store", "reason": "store_unavailable"},
    )
    spans_dropped = registry.get_sample_value(
        "telemetry_spans_dropped_total", {**labels, "exporter": "store", "reason": "export_failed"}
    )
    assert logs_dropped is not None
    assert logs_dropped >= 3
    assert spans_dropped is not None
    assert spans_dropped >= 1


def test_engine_uses_the_store_only_when_nothing_else_is_configured(tmp_path: Path) -> None:
    """``enabled: auto`` writes to the store by default, not next to sinks/exporters from code,
    and ``enabled: false`` turns it off."""
    db = tmp_path / "t.db"
    telemetry = _telemetry(db)
    assert any(p.name == "store" for p in telemetry.tracer_provider.batch_processors)  # type: ignore[union-attr]
    assert any(getattr(s, "name", "") == "store" for s in telemetry.pipeline.sinks)  # type: ignore[union-attr]
    telemetry.shutdown()
    other = Telemetry({"store": {"path": str(db)}}, use_env=False, set_global=False,
                      log_sinks=[InMemoryLogSink()], span_exporters=[StoreSpanExporter(
                          str(tmp_path / "x.db"), retention=60)])  # fmt: skip
    assert all(p.name != "store" for p in other.tracer_provider.batch_processors)  # type: ignore[union-attr]
    assert all(getattr(s, "name", "") != "store" for s in other.pipeline.sinks)  # type: ignore[union-attr]
    other.shutdown()
    off = _telemetry(db, enabled=False)
    assert off.settings.store.enabled == "false"
    assert all(p.name != "store" for p in off.tracer_provider.batch_processors)  # type: ignore[union-attr]
    off.shutdown()


def test_tracing_manager_get_span_and_filters(tmp_path: Path) -> None:
    """``get_span`` and ``list_traces`` find spans by id, status, duration and attribute."""
    db = tmp_path / "t.db"
    telemetry = _telemetry(db)
    tracer = telemetry.get_tracer("t")
    with tracer.start_span("fast") as fast:
        fast.set_attribute("tenant", "acme")
    try:
        with tracer.start_span("slow"):
            time.sleep(0.05)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    telemetry.flush()
    with TracingManager(db) as store:
        errors = store.list_traces(TraceQuery(status="error"))
        assert [t.name for t in errors] == ["slow"]
        assert [t.name for t in store.list_traces(TraceQuery(min_duration=0.04))] == ["slow"]
        acme = store.list_traces(TraceQuery(attributes={"tenant": "acme"}))
        assert [t.name for t in acme] == ["fast"]
        span = store.get_trace(errors[0].trace_id)[0]
        fetched = store.get_span(span.span_id)
        assert fetched is not None
        assert fetched.events[0]["attributes"]["exception.type"] == "RuntimeError"
    telemetry.shutdown()


def _first_writes_at_once(path: Path, writers: int) -> list[BaseException]:
    """``writers`` stores on ``path`` each write one log line at the same moment."""
    import threading

    stores = [SQLiteStore(str(path), retention=3600) for _ in range(writers)]
    barrier = threading.Barrier(writers)
    failures: list[BaseException] = []

    def write(store: SQLiteStore, n: int) -> None:
        barrier.wait()
        try:
            row = (time.time(), "info", 20, "race", "svc", f"line {n}", None, None, None, "{}")
            store.write(logs=[row])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    return failures


def test_writers_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Six writers (the span and log writers of several workers) open a store file that does
    not exist yet at the same moment: none is refused ("database is locked" while another
    creates the schema) and every row is kept; repeated on 40 fresh files."""
    import sqlite3

    for round_ in range(40):
        path = tmp_path / f"round-{round_}" / "telemetry.db"
        assert _first_writes_at_once(path, 6) == []
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT count(*) FROM logs").fetchone()[0] == 6
