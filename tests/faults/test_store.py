"""The SQLite store (spans and log events) locked, corrupted or filled by others, and its writer
killed with SIGKILL mid-write."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import telemetry_web.store._db as db

from ._harness import BATCH, MANY, Checks, Run, client_for, log_probes, span_probes, telemetry
from .conftest import tiny_filesystem
from .test_log_sinks import _fill

ROOT = Path(__file__).resolve().parents[2]
SPANS = "telemetry_spans_dropped_total"
LOGS = "telemetry_log_events_dropped_total"
BACKOFF = 0.3  # the store's longest pause after a failure, in these tests


@pytest.fixture(autouse=True)
def _short_store_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store skips writes for 1 s doubling to 30 s after a failure: shortened here."""
    monkeypatch.setattr(db, "FIRST_BACKOFF", 0.1)
    monkeypatch.setattr(db, "MAX_BACKOFF", BACKOFF)


def _rows(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path, timeout=5) as conn:
        spans = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
        logs = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
    conn.close()
    return int(spans), int(logs)


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


_LOCKER = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.read()
    conn.execute("ROLLBACK")
"""

_CORRUPTER = """
    import os, sys
    with open(sys.argv[1], "r+b") as f:
        size = f.seek(0, 2)
        f.seek(0)
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())
    print("corrupted", flush=True)
"""


def _locked(path: Path) -> Callable[[], Callable[[], None]]:
    def start() -> Callable[[], None]:
        locker = _python(_LOCKER, str(path))
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked"

        def clear() -> None:
            assert locker.stdin is not None
            assert locker.stdout is not None
            locker.stdin.close()
            locker.wait(10)
            locker.stdout.close()

        return clear

    return start


def _corrupted(path: Path) -> Callable[[], Callable[[], None]]:
    def start() -> Callable[[], None]:
        corrupter = _python(_CORRUPTER, str(path))
        out, _ = corrupter.communicate(timeout=10)
        assert out.strip() == "corrupted"

        def clear() -> None:  # the operator moves the broken file away
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

        return clear

    return start


def _full(path: Path) -> Callable[[], Callable[[], None]]:
    def start() -> Callable[[], None]:
        filler = _fill(path.parent)
        return lambda: filler.unlink()

    return start


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs for the store (needs root: fails under CI=true, else skips)."""
    yield from tiny_filesystem(tmp_path / "mnt", "512k")


@pytest.mark.parametrize("fault", ["locked", "corrupted"])
async def test_store_fault(fault: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store another process locks or corrupts: requests stay fast, queues bounded, drops
    counted, one report, and writes resume once the fault clears."""
    path = tmp_path / "telemetry.db"
    inject = {"locked": _locked, "corrupted": _corrupted}[fault](path)
    await _store_case(path, inject, capsys)


async def test_store_disk_full(small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store on a full disk: as for a locked store, and writes resume once space is freed."""
    path = small_disk / "telemetry.db"
    await _store_case(path, _full(path), capsys)


async def _store_case(
    path: Path, inject: Callable[[], Callable[[], None]], capsys: pytest.CaptureFixture[str]
) -> None:
    store = {"enabled": "true", "path": str(path), "busy_timeout": "200ms"}
    tel = telemetry({"store": store})
    checks = Checks()
    try:
        async with client_for(tel) as client:
            run = Run(tel, client, {**span_probes(tel), **log_probes(tel)})
            await run.send(BATCH)
            tel.flush(5.0)
            assert _rows(path) == (BATCH, BATCH)
            capsys.readouterr()

            clear = inject()
            for _ in range(4):  # several batches meet the fault, over several backoff periods
                await run.send(MANY // 4)
                tel.flush(2.0)
                time.sleep(BACKOFF)
            lines = [
                line for line in capsys.readouterr().err.splitlines() if "telemetry-web" in line
            ]
            clear()
            span_drops = await run.dropped(SPANS, "exporter", "store")
            log_drops = {
                **(await run.dropped(LOGS, "sink", "store")),
                **{f"queue:{k}": v for k, v in (await run.dropped(LOGS, "sink", "queue")).items()},
            }
            stored = _rows(path) if path.exists() else (0, 0)
            queued = run.queued()
            run.check_request_path(checks)
            run.check_bounds(checks)
            if path.exists():  # not after the corrupted file was moved away
                checks.expect(
                    stored[0] + sum(span_drops.values()) + queued >= run.sent,
                    f"(3) spans: stored {stored[0]} + dropped {span_drops} + queued {queued} "
                    f"< sent {run.sent}",
                )
                checks.expect(
                    stored[1] + sum(log_drops.values()) + queued >= run.sent,
                    f"(3) logs: stored {stored[1]} + dropped {log_drops} + queued {queued} "
                    f"< sent {run.sent}",
                )
            checks.expect(
                sum(span_drops.values()) > 0 and sum(log_drops.values()) > 0,
                f"(3) no drops counted: spans {span_drops}, logs {log_drops}",
            )
            unavailable = [line for line in lines if "Log store unavailable" in line]
            checks.expect(
                len(unavailable) == 1,
                f"(4) {len(unavailable)} 'Log store unavailable' lines: {unavailable[:3]}",
            )
            # The metric history writes to the same store: at most its own one line per period.
            history = [line for line in lines if "Metric history unavailable" in line]
            checks.expect(len(history) <= 1, f"(4) {len(history)} metric history lines")
            others = [line for line in lines
                      if "Log store unavailable" not in line and line not in history]  # fmt: skip
            checks.expect(not others, f"(4) other error lines: {others[:3]}")

            time.sleep(BACKOFF)  # the store's pause after its last failure
            before = _rows(path) if path.exists() else (0, 0)
            await run.send(BATCH)
            tel.flush(5.0)
            after = _rows(path) if path.exists() else (0, 0)
            checks.expect(
                after[0] - before[0] == BATCH and after[1] - before[1] == BATCH,
                f"(5) after the fault cleared: {after[0] - before[0]} spans and "
                f"{after[1] - before[1]} log events of {BATCH} stored",
            )
    finally:
        tel.shutdown(timeout=1.0)
    checks.verify()


# --- SIGKILL mid-write ---------------------------------------------------------------------------

ROWS = 50  # rows per table per transaction

_WRITER = """
    import sys, time
    from telemetry_web.store import SQLiteStore
    store = SQLiteStore(sys.argv[1], retention=86400.0, busy_timeout=5.0)
    batch = 0
    while True:
        now = time.time()
        spans = [(f"{batch:032x}", f"{i:016x}", None, "op", "internal", "killed", None, None,
                  time.time_ns(), 1, "unset", None, "{}", "[]", "{}") for i in range(%d)]
        logs = [(now, "info", 20, "w", "killed", "step", None, None, None, "{}")
                for _ in range(%d)]
        store.write(spans=spans, logs=logs)
        batch += 1
        print(batch, flush=True)   # after COMMIT: this batch is durable
""".replace("%d", str(ROWS))


@pytest.mark.parametrize("acks_before_kill", [3, 17, 40])
async def test_store_writer_sigkilled(acks_before_kill: int, tmp_path: Path) -> None:
    """A writer killed mid-write leaves a store that opens, passes its integrity check and holds
    every committed batch whole; a new Telemetry writes to it afterwards."""
    path = tmp_path / "telemetry.db"
    writer = _python(_WRITER, str(path))
    assert writer.stdout is not None
    acked = 0
    while acked < acks_before_kill:
        line = writer.stdout.readline()
        assert line, "the writer stopped on its own"
        acked = int(line)
    time.sleep(0.003 * acks_before_kill % 0.02)  # somewhere inside a later transaction
    os.kill(writer.pid, signal.SIGKILL)
    rest, _ = writer.communicate(timeout=10)
    acked = max([acked, *(int(line) for line in rest.split())])
    assert writer.returncode == -signal.SIGKILL

    with sqlite3.connect(path, timeout=5) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    spans, logs = _rows(path)
    assert spans == logs, "a transaction holds its spans and its log events, or neither"
    assert spans % ROWS == 0, f"{spans} rows: a torn transaction"
    assert acked * ROWS <= spans <= (acked + 1) * ROWS, f"{acked} batches acknowledged, {spans}"

    tel = telemetry({"store": {"enabled": "true", "path": str(path)}})
    try:
        async with client_for(tel) as client:
            run = Run(tel, client, span_probes(tel))
            await run.send(BATCH)
            tel.flush(5.0)
    finally:
        tel.shutdown(timeout=2.0)
    assert _rows(path) == (spans + BATCH, logs + BATCH)
