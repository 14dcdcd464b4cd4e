"""Log sinks against failing backends: Elasticsearch's ``_bulk`` API and a file on a full disk."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .._waiting import poll
from ._harness import (
    BATCH,
    MANY,
    SLOW,
    TIMEOUT,
    Checks,
    Run,
    client_for,
    log_probes,
    stderr_lines,
    telemetry,
)
from ._peers import MALFORMED, MODES, HttpPeer
from .conftest import tiny_filesystem

DROPPED = "telemetry_log_events_dropped_total"
MAX_BUFFER = 32  # events the Elasticsearch sink holds while the cluster is away
RECOVERY = 5.0


def _bulk_count(body: bytes) -> int:
    return body.count(b"\n") // 2


def _bulk_answer(body: bytes, count: int) -> tuple[bytes, str]:
    items = [{"index": {"status": 201}}] * count
    return json.dumps({"errors": False, "items": items}).encode(), "application/json"


async def _all_dropped(run: Run, sink: str) -> dict[str, float]:
    """The sink's own drops and the log queue's (events that never reached a sink)."""
    dropped = {f"{sink}:{k}": v for k, v in (await run.dropped(DROPPED, "sink", sink)).items()}
    queue = await run.dropped(DROPPED, "sink", "queue")
    return {**dropped, **{f"queue:{k}": v for k, v in queue.items()}}


@pytest.mark.parametrize("mode", MODES)
async def test_elasticsearch_fault(mode: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Requests stay fast, the buffer bounded, drops counted, one report, recovery afterwards."""
    peer = HttpPeer("/", _bulk_count, _bulk_answer)
    peer.delay = SLOW
    sink = {
        "url": peer.base_url,
        "buffer_size": BATCH,
        "flush_interval": "50ms",
        "max_buffer": MAX_BUFFER,
        "timeout": TIMEOUT,
        "backoff": "100ms",
        "max_backoff": "1s",
    }
    tel = telemetry({"logging": {"sinks": {"console": False, "elasticsearch": sink}}})
    checks = Checks()
    try:
        async with client_for(tel) as client:
            run = Run(tel, client, log_probes(tel))
            await _elasticsearch_case(run, peer, mode, checks, capsys)
    finally:
        tel.shutdown(timeout=1.0)
        peer.close()
    checks.verify()


async def _elasticsearch_case(
    run: Run, peer: HttpPeer, mode: str, checks: Checks, capsys: pytest.CaptureFixture[str]
) -> None:
    tel = run.telemetry
    assert tel.pipeline is not None
    await run.send(BATCH)
    tel.pipeline.flush(5.0)
    assert peer.delivered == BATCH, f"warm-up: {peer.delivered} of {BATCH} events delivered"
    capsys.readouterr()

    peer.set_mode(mode)
    attempts = peer.attempts
    await run.send(BATCH)
    poll(lambda: peer.attempts > attempts, bool, 2.0)  # then carry on either way
    await run.send(MANY)
    tel.pipeline.flush(1.5)  # False while the cluster is away: the buffer waits for it
    await asyncio.sleep(0.5)  # several attempts within one report period
    dropped = await _all_dropped(run, "elasticsearch")
    queued = run.queued()
    lines = stderr_lines(capsys.readouterr().err, "Log shipping failed")

    run.check_request_path(checks)
    run.check_bounds(checks)
    accounted = peer.delivered + sum(dropped.values()) + queued
    if mode in MALFORMED:
        checks.expect(
            accounted + peer.received_malformed >= run.sent,
            f"(3) events lost uncounted: delivered {peer.delivered} + malformed "
            f"{peer.received_malformed} + dropped {dropped} + queued {queued} < sent {run.sent}",
        )
    else:
        checks.expect(
            accounted == run.sent,
            f"(3) delivered {peer.delivered} + dropped {dropped} + queued {queued} "
            f"!= sent {run.sent}",
        )
    expected = 0 if mode == "slow" else 1
    checks.expect(
        len(lines) == expected,
        f"(4) {len(lines)} 'Log shipping failed' lines within one report period, expected "
        f"{expected} ({peer.attempts - attempts} attempts): {lines[:3]}",
    )

    peer.set_mode("ok")
    before = peer.delivered
    started = time.monotonic()
    tel.pipeline.flush(RECOVERY)  # what was buffered goes now
    await run.send(BATCH)
    tel.pipeline.flush(RECOVERY)
    checks.expect(
        peer.delivered - before >= BATCH + (0 if mode in MALFORMED else queued),
        f"(5) after recovery {peer.delivered - before} events delivered, expected the "
        f"{queued} buffered and {BATCH} new ones",
    )
    checks.expect(
        time.monotonic() - started < 2.0,
        f"(5) recovery took {time.monotonic() - started:.1f} s",
    )
    if mode not in MALFORMED:
        final = await _all_dropped(run, "elasticsearch")
        checks.expect(
            peer.delivered + sum(final.values()) + run.queued() == run.sent,
            f"(3) after recovery: delivered {peer.delivered} + dropped {final} + queued "
            f"{run.queued()} != sent {run.sent}",
        )


# --- the file sink on a full disk --------------------------------------------------------------


def _fill(directory: Path) -> Path:
    """Take every free byte of the filesystem holding ``directory``."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        block = b"\0" * 4096
        while True:
            try:
                f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        for size in (1024, 256, 64, 16, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError:
                continue
    return filler


def _lines(path: Path) -> tuple[int, list[str]]:
    """Whole JSON lines in the log file, and the lines that are not JSON (torn writes)."""
    good, bad = 0, []
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            json.loads(line)
            good += 1
        except ValueError:
            bad.append(line[:80].decode("utf-8", "replace"))
    return good, bad


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted for the test (needs root: fails under CI=true, else skips)."""
    yield from tiny_filesystem(tmp_path / "mnt")


async def test_file_sink_disk_full(full_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On a full disk requests stay fast, no line is torn, drops are counted and reported once,
    and lines are written again once space is freed."""
    path = full_disk / "app.log"
    config: dict[str, Any] = {"path": str(path), "rotation": {"max_size": "10MB"}}
    tel = telemetry({"logging": {"sinks": {"console": False, "file": config}}})
    checks = Checks()
    try:
        async with client_for(tel) as client:
            run = Run(tel, client, log_probes(tel))
            assert tel.pipeline is not None
            await run.send(BATCH)
            tel.pipeline.flush(5.0)
            assert _lines(path) == (BATCH, [])
            capsys.readouterr()
            filler = _fill(full_disk)
            for _ in range(4):  # several batches fail, in several writer rounds
                await run.send(MANY // 4)
                tel.pipeline.flush(2.0)
            dropped = await _all_dropped(run, "file")
            written, torn = _lines(path)
            lines = stderr_lines(capsys.readouterr().err, "Log shipping failed")
            run.check_request_path(checks)
            run.check_bounds(checks)
            checks.expect(not torn, f"(3) {len(torn)} torn lines in the file: {torn[:2]}")
            checks.expect(
                written + sum(dropped.values()) + run.queued() == run.sent,
                f"(3) written {written} + dropped {dropped} + queued {run.queued()} "
                f"!= sent {run.sent}",
            )
            checks.expect(len(lines) == 1, f"(4) {len(lines)} error lines: {lines[:3]}")

            os.unlink(filler)
            await run.send(BATCH)
            tel.pipeline.flush(5.0)
            after, torn = _lines(path)
            checks.expect(not torn, f"(5) torn lines after recovery: {torn[:2]}")
            checks.expect(
                after - written == BATCH,
                f"(5) {after - written} of {BATCH} new lines written after space was freed",
            )
    finally:
        tel.shutdown(timeout=1.0)
    checks.verify()


assert MAX_BUFFER < MANY
