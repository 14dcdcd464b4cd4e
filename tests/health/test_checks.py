"""Each check kind against something real on loopback: ports, an HTTP server, scripts, disks
and user functions, including the ones that hang."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from telemetry_web import Telemetry
from telemetry_web.health import DiskCheck, HttpCheck, Outcome, ScriptCheck, TcpCheck
from telemetry_web.health._checks import MAX_OUTPUT_BYTES
from telemetry_web.health._state import Snapshot

from .conftest import HttpTarget


async def first_result(telemetry: Telemetry, check: Any, **options: Any) -> Snapshot:
    """Register ``check`` as "c", run one round, return its snapshot."""
    telemetry.health.add_check("c", check, **options)
    await telemetry.health.run_round()
    return telemetry.health.snapshot("c")


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie awaiting its reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


# --- tcp ---------------------------------------------------------------------------------------


async def test_tcp_port_that_accepts_is_healthy(telemetry: Telemetry, listening_port: int) -> None:
    """A port with a listener is healthy on the first round."""
    snapshot = await first_result(telemetry, TcpCheck("127.0.0.1", listening_port))
    assert (snapshot.status, snapshot.last_error) == ("healthy", None)


async def test_tcp_port_that_refuses_is_unhealthy(telemetry: Telemetry, refused_port: int) -> None:
    """A port nobody listens on is unhealthy, with the refusal as the error."""
    snapshot = await first_result(telemetry, TcpCheck("127.0.0.1", refused_port))
    assert snapshot.status == "unhealthy"
    assert snapshot.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"


# --- http --------------------------------------------------------------------------------------


async def test_http_200_is_healthy(telemetry: Telemetry, http_target: HttpTarget) -> None:
    """An endpoint answering the expected 200 is healthy."""
    snapshot = await first_result(telemetry, HttpCheck(http_target.url("/ok")))
    assert (snapshot.status, snapshot.last_error) == ("healthy", None)


async def test_http_500_is_unhealthy_with_the_body(
    telemetry: Telemetry, http_target: HttpTarget
) -> None:
    """A 500 is unhealthy; the error names both statuses and the body is kept as output."""
    snapshot = await first_result(telemetry, HttpCheck(http_target.url("/fail")))
    assert snapshot.status == "unhealthy"
    assert snapshot.last_error == "HTTP 500 Internal Server Error (expected 200)"
    assert snapshot.last_output == "database is on fire"


async def test_http_expected_status_and_headers(
    telemetry: Telemetry, http_target: HttpTarget
) -> None:
    """Configured headers are sent, and any expected status can be the healthy one."""
    with_token = HttpCheck(http_target.url("/needs-token"), headers={"X-Token": "s3cret"})
    assert (await first_result(telemetry, with_token)).status == "healthy"
    telemetry.health.remove_check("c")
    missing = HttpCheck(http_target.url("/missing"), expected_status=404)
    assert (await first_result(telemetry, missing)).status == "healthy"


async def test_http_server_that_hangs_is_cut_at_the_timeout(
    telemetry: Telemetry, http_target: HttpTarget
) -> None:
    """A server that accepts and never answers fails the check at its timeout."""
    snapshot = await first_result(telemetry, HttpCheck(http_target.url("/hang")), timeout=0.2)
    assert http_target.hanging.is_set()
    assert snapshot.status == "unhealthy"
    assert snapshot.last_error == "TimeoutError: timed out"


async def test_http_check_from_configuration(make_captured: Any, http_target: HttpTarget) -> None:
    """health.checks[].check.http builds the same check, method and expected status included."""
    captured = make_captured(
        {
            "health": {
                "checks": [
                    {"name": "api", "check": {"http": {"url": http_target.url("/fail"),
                                                        "method": "HEAD",
                                                        "expected_status": 500}}},
                ]
            }
        }
    )  # fmt: skip
    await captured.telemetry.health.run_round()
    assert captured.telemetry.health.snapshot("api").status == "healthy"


# --- scripts -----------------------------------------------------------------------------------


async def test_script_that_exits_0_is_healthy_with_its_output(telemetry: Telemetry) -> None:
    """Exit status 0 is healthy; what the script printed is kept."""
    snapshot = await first_result(telemetry, ScriptCheck("sh -c 'echo all good'"))
    assert (snapshot.status, snapshot.last_output) == ("healthy", "all good")


async def test_script_that_fails_reports_status_and_both_streams(telemetry: Telemetry) -> None:
    """A non-zero exit is unhealthy; standard output and error are captured together."""
    snapshot = await first_result(
        telemetry, ScriptCheck(["sh", "-c", "echo checking; echo queue is full >&2; exit 3"])
    )
    assert snapshot.status == "unhealthy"
    assert snapshot.last_error == "exited with status 3"
    assert snapshot.last_output == "checking\nqueue is full"


async def test_script_that_hangs_is_killed_with_its_children(
    telemetry: Telemetry, tmp_path: Path
) -> None:
    """A script past its timeout is killed, its process group included, and reported so."""
    pids = tmp_path / "pids"
    script = f"echo started; sleep 60 & echo $! > {pids}; wait"
    snapshot = await first_result(telemetry, ScriptCheck(["sh", "-c", script]), timeout=0.3)
    assert snapshot.status == "unhealthy"
    assert snapshot.last_error == "killed after its 0.3s timeout"
    assert snapshot.last_output == "started"
    (sleeper,) = (int(p) for p in pids.read_text().split())
    for _ in range(200):  # the kill is sent; the reaper may take a moment to notice
        if process_gone(sleeper):
            break
        await asyncio.sleep(0.01)
    assert process_gone(sleeper)


async def test_script_output_is_truncated(telemetry: Telemetry) -> None:
    """Output past the limit is cut, and the report says how much there was."""
    command = [sys.executable, "-c", "print('x' * 10000)"]
    snapshot = await first_result(telemetry, ScriptCheck(command))
    assert snapshot.last_output is not None
    assert snapshot.last_output.startswith("x" * MAX_OUTPUT_BYTES)
    assert snapshot.last_output.endswith(
        f"… [truncated: 10001 bytes, first {MAX_OUTPUT_BYTES} kept]"
    )


async def test_missing_script_is_unhealthy(telemetry: Telemetry, tmp_path: Path) -> None:
    """A command that does not exist is a failure naming the missing file."""
    snapshot = await first_result(telemetry, ScriptCheck(str(tmp_path / "nope")))
    assert snapshot.status == "unhealthy"
    assert snapshot.last_error is not None
    assert snapshot.last_error.startswith("FileNotFoundError: [Errno 2] No such file")


# --- disk --------------------------------------------------------------------------------------


async def test_disk_with_enough_space_is_healthy(telemetry: Telemetry, tmp_path: Path) -> None:
    """A one-byte minimum is met by any real file system."""
    snapshot = await first_result(telemetry, DiskCheck(str(tmp_path), min_free=1))
    assert snapshot.status == "healthy"
    assert snapshot.last_output is not None
    assert " free of " in snapshot.last_output


async def test_disk_below_the_minimum_is_unhealthy(telemetry: Telemetry, tmp_path: Path) -> None:
    """A minimum no disk here can meet (an exbibyte) fails, naming the path and the limit."""
    snapshot = await first_result(telemetry, DiskCheck(str(tmp_path), min_free=2**60))
    assert snapshot.status == "unhealthy"
    assert snapshot.last_error is not None
    assert snapshot.last_error.startswith(f"{tmp_path}: ")
    assert snapshot.last_error.endswith(", below 1048576.0TiB")


async def test_disk_percentage_from_configuration(make_captured: Any, tmp_path: Path) -> None:
    """disk {path, min_free_percent: 100} fails unless the disk is empty."""
    captured = make_captured(
        {"health": {"checks": [{"name": "d", "check": {"disk": {"path": str(tmp_path),
                                                                 "min_free_percent": 100}}}]}}
    )  # fmt: skip
    await captured.telemetry.health.run_round()
    snapshot = captured.telemetry.health.snapshot("d")
    assert snapshot.status == "unhealthy"
    assert snapshot.last_error is not None
    assert snapshot.last_error.endswith("below 100%")


# --- functions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "status", "error"),
    [
        pytest.param(None, "healthy", None, id="none"),
        pytest.param(True, "healthy", None, id="true"),
        pytest.param(False, "unhealthy", "returned False", id="false"),
        pytest.param(Outcome(False, "quota spent", "12 left"), "unhealthy", "quota spent",
                     id="outcome"),
    ],
)  # fmt: skip
async def test_function_return_values(
    telemetry: Telemetry, returned: object, status: str, error: str | None
) -> None:
    """None and True pass, False fails, an Outcome is taken as it is."""
    snapshot = await first_result(telemetry, lambda: returned)
    assert (snapshot.status, snapshot.last_error) == (status, error)


async def test_function_that_raises_is_unhealthy(telemetry: Telemetry) -> None:
    """The exception is the error: its type and message, on one line."""

    def broken() -> None:
        raise RuntimeError("no\n  route")

    snapshot = await first_result(telemetry, broken)
    assert (snapshot.status, snapshot.last_error) == ("unhealthy", "RuntimeError: no route")


async def test_async_function_runs_on_the_loop(telemetry: Telemetry) -> None:
    """An async check is awaited on the runner's loop, not in a thread."""
    seen: list[int] = []

    async def on_loop() -> bool:
        seen.append(threading.get_ident())
        return True

    snapshot = await first_result(telemetry, on_loop)
    assert snapshot.status == "healthy"
    assert seen == [threading.get_ident()]


async def test_sync_function_runs_in_its_own_thread(telemetry: Telemetry) -> None:
    """A blocking check never runs on the loop's thread."""
    seen: list[int] = []
    snapshot = await first_result(telemetry, lambda: seen.append(threading.get_ident()))
    assert snapshot.status == "healthy"
    assert len(seen) == 1
    assert seen[0] != threading.get_ident()


async def test_async_function_that_hangs_is_cut_at_its_timeout(telemetry: Telemetry) -> None:
    """A coroutine still waiting at the timeout is cancelled and counted as a failure."""
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    snapshot = await first_result(telemetry, hangs, timeout=0.05)
    assert (snapshot.status, snapshot.last_error) == ("unhealthy", "timed out after 0.05s")
    await asyncio.wait_for(cancelled.wait(), 5)


async def test_hung_sync_function_is_not_started_again(telemetry: Telemetry) -> None:
    """A blocking check stuck past its timeout fails each turn without a second thread."""
    release, calls = threading.Event(), []

    def stuck() -> None:
        calls.append(1)
        release.wait(30)

    try:
        first = await first_result(telemetry, stuck, timeout=0.05, unhealthy_threshold=1)
        assert (first.status, first.last_error) == ("unhealthy", "timed out after 0.05s")
        await telemetry.health.run_round()
        second = telemetry.health.snapshot("c")
        assert second.consecutive_failures == 2
        assert second.last_error is not None
        assert second.last_error.startswith("still running ")
        assert second.last_error.endswith("s after it started; not run again")
        assert calls == [1]
    finally:
        release.set()


def test_decorator_registers_sync_and_async_functions(telemetry: Telemetry) -> None:
    """@telemetry.health_check returns the function unchanged and registers it with options."""

    @telemetry.health_check("quota", critical=False, interval=30, timeout=2)
    async def quota() -> bool:
        return True

    @telemetry.health_check("disk-cache", unhealthy_threshold=5)
    def disk_cache() -> bool:
        return True

    assert telemetry.health.names() == ["disk-cache", "quota"]
    entry = telemetry.health._entries["quota"]
    assert (entry.options.critical, entry.options.interval, entry.options.timeout) == (
        False,
        30,
        2,
    )
    assert entry.check.is_async
    assert not telemetry.health._entries["disk-cache"].check.is_async
    assert asyncio.run(quota()) is True


def test_function_from_configuration(make_captured: Any) -> None:
    """function {target: "module:attr"} imports the function at configure time."""
    captured = make_captured(
        {"health": {"checks": [{"name": "f", "check": {"function": {"target": "os:getcwd"}}}]}}
    )
    assert captured.telemetry.health._entries["f"].check.function is os.getcwd


def test_unknown_objects_are_refused(telemetry: Telemetry) -> None:
    """Something that is neither a check, an engine, a client nor callable is a TypeError."""
    with pytest.raises(TypeError, match=r"a health check is a telemetry_web\.health\.Check"):
        telemetry.add_health_check("x", 42)
