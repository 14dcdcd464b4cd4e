"""The store's write path: rows prepared straight from spans and events equal the ones made from
the view-form rows, multi-row inserts keep every row in order, checkpoints happen in the
background and stop with the store, and a forked writer gets its own connection and thread."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from telemetry_web.store import LogQuery, SQLiteStore, TraceQuery, TracingManager
from telemetry_web.store._rows import prepare_log, prepare_span
from telemetry_web.store._writers import (
    iso_time,
    log_row,
    prepared_log,
    prepared_span,
    shared_store,
    span_row,
)

ROOT = Path(__file__).resolve().parents[2]


def _spans() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "k": 1}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    attributes: dict[str, str | int] = {
        "http.request.method": "GET", "http.route": "/u/{id}", "url.path": "/u/1",
        "http.response.status_code": 500,
    }  # fmt: skip
    with (
        tracer.start_as_current_span("GET /u/{id}", kind=SpanKind.SERVER, attributes=attributes),
        tracer.start_as_current_span("db", attributes={"db.system": "sqlite"}) as child,
    ):
        child.add_event("retry", {"n": 2})
        child.set_status(Status(StatusCode.ERROR, "boom"))
    with tracer.start_as_current_span("GET", kind=SpanKind.SERVER,
                                      attributes={"http.request.method": "GET"}):  # fmt: skip
        pass
    with tracer.start_as_current_span("plain", attributes={"http.response.status_code": True}):
        pass
    with tracer.start_as_current_span("bare", kind=SpanKind.CONSUMER) as bare:
        bare.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_spans_prepared_directly_equal_the_view_rows_prepared() -> None:
    spans = _spans()
    assert len(spans) == 5
    for span in spans:
        assert prepared_span(span) == prepare_span(span_row(span))


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-12-07T11:30:00.123Z",
        "2026-12-07T23:59:59.999Z",
        "1999-01-01T00:00:00.000Z",
        "2026-12-07T11:30:00Z",
        "2026-12-07T11:30:00.123+01:00",
        "2026-12-07T11:30:00.1234",
        "2026-12-07T11:30:0x.123Z",
        "not a time",
        1765107000.25,
        None,
    ],
)
def test_events_prepared_directly_equal_the_view_rows_prepared(stamp: Any) -> None:
    event = {"event": "request", "level": "warning", "logger": "app", "service": "svc",
             "trace_id": "ab" * 16, "span_id": "cd" * 8, "request_id": "r-1", "x": [1, 2],
             "timestamp": stamp}  # fmt: skip
    if stamp is None:
        del event["timestamp"]
    direct, via_row = prepared_log(event), prepare_log(log_row(event))
    if not isinstance(stamp, str) or "T" not in stamp or "x" in stamp:
        # no parsable time: both take the clock's
        assert abs(direct[0] - via_row[0]) < 60
        direct, via_row = direct[1:], via_row[1:]
    assert direct == via_row


def test_the_pipeline_timestamp_reads_as_datetime_reads_it() -> None:
    base = datetime(2026, 12, 7, tzinfo=timezone.utc).timestamp()
    for k in range(2000):
        ts = base + k * 37.123
        text = iso_time(ts)
        expected = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        row = prepared_log({"event": "e", "timestamp": text})
        assert row[0] == expected
        assert row[-1] is None  # the timestamp is given back by iso_time: not kept in fields


def _span(i: int, now: float) -> tuple[Any, ...]:
    return (
        f"{i + 1:032x}", f"{i + 1:016x}", None, "GET /a", "server", "svc", "/a", 200,
        int((now + i * 1e-3) * 1e9), 1_000_000, "unset", None,
        json.dumps({"http.request.method": "GET", "i": i}), "[]",
        json.dumps({"service.name": "svc"}),
    )  # fmt: skip


def _line(i: int, now: float) -> tuple[Any, ...]:
    return (now + i * 1e-3, "info", 20, "app", "svc", f"line {i}", None, None, None,
            json.dumps({"i": i}))  # fmt: skip


@pytest.mark.parametrize("count", [1, 17, 130, 301])
def test_a_batch_of_any_size_is_stored_whole_and_in_order(tmp_path: Path, count: int) -> None:
    now = time.time()
    store = SQLiteStore(str(tmp_path / "t.db"), retention=86400)
    store.write(spans=[_span(i, now) for i in range(count)],
                logs=[_line(i, now) for i in range(count)])  # fmt: skip
    store.close()
    with TracingManager(tmp_path / "t.db") as reader:
        traces = reader.list_traces(TraceQuery(limit=count + 1))
        lines = reader.logs(LogQuery(limit=count + 1))
    assert [t.trace_id for t in traces] == [f"{i + 1:032x}" for i in reversed(range(count))]
    assert [(r.event, r.fields["i"]) for r in lines] == [(f"line {i}", i) for i in range(count)]


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "telemetry-store-checkpoint"]


def test_checkpoints_run_in_the_background_and_stop_with_the_store(tmp_path: Path) -> None:
    """The writer's connection leaves the WAL alone (its own checkpoint only past 64 MiB): the
    pages reach the database file through the checkpoint thread; close() stops it."""
    path = tmp_path / "t.db"
    store = SQLiteStore(str(path), retention=86400)
    now = time.time()
    store.write(spans=[_span(0, now)])
    before = path.stat().st_size
    store.write(spans=[_span(i, now) for i in range(1, 3000)])
    thread = store._checkpointer._thread
    assert thread is not None
    assert thread in _checkpoint_threads()
    deadline = time.monotonic() + 30
    while path.stat().st_size <= before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.stat().st_size > before  # the new pages were copied into the file
    store.close()
    assert not thread.is_alive()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM span_rows").fetchone()[0] == 3000
    conn.close()


def test_the_exporter_and_the_sink_of_one_file_share_its_writer(tmp_path: Path) -> None:
    one = shared_store(str(tmp_path / "t.db"), retention=60.0, busy_timeout=5.0, max_size=None)
    two = shared_store(str(tmp_path / "t.db"), retention=60.0, busy_timeout=5.0, max_size=None)
    other = shared_store(str(tmp_path / "u.db"), retention=60.0, busy_timeout=5.0, max_size=None)
    assert one is two
    assert other is not one


_FORKED = textwrap.dedent(
    """
    import json, os, sys, time
    from telemetry_web.store._writers import shared_store
    path = sys.argv[1]
    store = shared_store(path, retention=86400.0, busy_timeout=5.0, max_size=None)
    def span(i):
        return (f"{i + 1:032x}", f"{i + 1:016x}", None, "op", "internal", "svc", None, None,
                time.time_ns(), 1000, "unset", None, "{}", "[]", '{"service.name": "svc"}')
    store.write(spans=[span(0)])
    with store._lock:  # as if the other writer's thread were writing at the fork
        pid = os.fork()
    if pid == 0:
        store.write(spans=[span(i) for i in range(1, 101)])
        store.close()
        os._exit(0)
    store.write(spans=[span(i) for i in range(101, 201)])
    assert os.waitpid(pid, 0)[1] == 0
    store.close()
    print("ok")
    """
)


def test_a_forked_writer_writes_with_its_own_connection_and_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    done = subprocess.run(
        [sys.executable, "-c", _FORKED, str(path)], capture_output=True, text=True,
        timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.stdout.strip() == "ok", done.stderr
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM span_rows").fetchone()[0] == 201
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
