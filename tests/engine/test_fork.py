"""Fork safety: a worker forked from a process that already built its Telemetry (gunicorn
--preload) gets its own log writer and span export threads, loses nothing and never hangs."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from telemetry_web import Telemetry


class FileSink:
    """Appends events as JSON lines (visible to the parent after a child writes them)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        with open(self.path, "a") as out:
            out.writelines(json.dumps(e, default=str) + "\n" for e in events)


class FileSpanExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a") as out:
            out.writelines(f"{os.getpid()} {s.name}\n" for s in spans)
        return SpanExportResult.SUCCESS


# Python 3.12+ warns about fork() in a threaded process: forking one is what is tested here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_children_deliver_logs_and_spans_while_the_parent_keeps_writing(
    tmp_path: Path,
) -> None:
    """Three children forked while the parent logs from another thread each deliver their own
    request line and span; none hangs."""
    logs, spans = tmp_path / "logs.jsonl", tmp_path / "spans.txt"
    telemetry = Telemetry(
        service="fork", use_env=False, config={"logging": {"sinks": {"console": False}}},
        span_exporters=[FileSpanExporter(spans)], log_sinks=[FileSink(logs)],
        capture_stdlib_logging=False,
    )  # fmt: skip
    log = telemetry.get_logger("parent")
    stop = threading.Event()

    def chatter() -> None:  # the parent's writer is busy when fork() happens
        while not stop.is_set():
            log.info("parent line")
            time.sleep(0.0005)

    thread = threading.Thread(target=chatter)
    thread.start()
    children = []
    try:
        for n in range(3):
            time.sleep(0.02)
            pid = os.fork()
            if pid == 0:  # the child: record one request, flush, leave without cleanup
                try:
                    telemetry.lifecycle.begin(
                        method="GET", scheme="http", path=f"/child/{n}", query="",
                        route="/child/{n}", headers={}, client=None,
                    ).finish(200)  # fmt: skip
                    telemetry.flush(timeout=30)
                finally:
                    os._exit(0)
            children.append(pid)
        deadline = time.monotonic() + 90  # generous: the suite may share the CPU
        for pid in children:
            while True:  # never hang the suite: a deadlocked child fails the test instead
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    assert os.waitstatus_to_exitcode(status) == 0
                    break
                assert time.monotonic() < deadline, f"child {pid} hung"
                time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
        telemetry.shutdown()
        for pid in children:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    lines = [json.loads(line) for line in logs.read_text().splitlines()]
    child_paths = sorted(e["path"] for e in lines if e["event"] == "request")
    assert child_paths == ["/child/0", "/child/1", "/child/2"]
    exported = spans.read_text().split("\n")
    child_spans = sorted(line.split(" ", 1)[1] for line in exported if "/child/" in line)
    assert child_spans == ["GET /child/{n}"] * 3
    assert {int(line.split(" ")[0]) for line in exported if "/child/" in line} == set(children)
