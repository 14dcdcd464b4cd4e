"""The background runner: a thread (WSGI) or a task on the app's loop (ASGI), never the probe;
stopping, restarting in forked workers, and the event loop lag behind ``/health``."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from telemetry_web import Telemetry
from telemetry_web.health import ScriptCheck

from .._waiting import async_wait_until, wait_until
from .conftest import MakeCaptured
from .test_checks import process_gone


def ready_body(telemetry: Telemetry) -> tuple[int, Any]:
    status, _headers, body = telemetry.endpoints["/ready"]({})
    return status, json.loads(body)


class Stuck:
    """A blocking check that signals when it is running and waits to be released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> None:
        self.entered.set()
        self.release.wait(30)


def test_thread_runner_runs_checks_in_the_background(telemetry: Telemetry) -> None:
    """start_health_checks(thread=True) runs the first round at once, then one per interval."""
    runs: list[str] = []
    telemetry.add_health_check("db", lambda: runs.append(threading.current_thread().name),
                               interval=0.01)  # fmt: skip
    telemetry.start_health_checks(thread=True)
    wait_until(lambda: len(runs) >= 3)
    assert ready_body(telemetry)[0] == 200
    assert all(name == "telemetry-health-db" for name in runs)
    assert threading.current_thread().name not in runs


def test_ready_answers_while_a_check_is_stuck(telemetry: Telemetry) -> None:
    """A probe answers from the latest state while a check is known to be blocked."""
    stuck = Stuck()
    telemetry.add_health_check("slow", stuck, timeout=30)
    telemetry.add_health_check("fast", lambda: None)
    telemetry.start_health_checks(thread=True)
    try:
        assert stuck.entered.wait(10)
        wait_until(lambda: telemetry.health.snapshot("fast").status == "healthy")
        status, body = ready_body(telemetry)  # the slow check is blocked right now
        assert not stuck.release.is_set()
        assert (status, body["checks"]["slow"]["status"]) == (503, "pending")
        assert body["checks"]["fast"]["status"] == "healthy"
    finally:
        stuck.release.set()
    wait_until(lambda: telemetry.health.ready)


def test_check_added_after_start_is_picked_up(telemetry: Telemetry) -> None:
    """A check registered while the runner waits runs without waiting for anything else."""
    telemetry.add_health_check("first", lambda: None, interval=3600)
    telemetry.start_health_checks(thread=True)
    wait_until(lambda: telemetry.health.snapshot("first").runs == 1)
    telemetry.add_health_check("late", lambda: None, interval=3600)
    wait_until(lambda: telemetry.health.snapshot("late").runs == 1)


def test_nothing_runs_without_checks(telemetry: Telemetry) -> None:
    """Starting without checks creates no thread; the first check added starts one."""
    before = {t.name for t in threading.enumerate()}
    telemetry.start_health_checks(thread=True)
    assert "telemetry-health" not in {t.name for t in threading.enumerate()} - before
    assert not telemetry.health.needs_start
    telemetry.add_health_check("db", lambda: None)
    wait_until(lambda: telemetry.health.snapshot("db").runs >= 1)


def test_re_registering_keeps_the_state(telemetry: Telemetry) -> None:
    """Registering a name again (a hot reload) replaces the check but keeps its status."""
    telemetry.add_health_check("db", lambda: None)
    telemetry.start_health_checks(thread=True)
    wait_until(lambda: telemetry.health.snapshot("db").status == "healthy")
    telemetry.add_health_check("db", lambda: None, interval=60)
    assert telemetry.health.snapshot("db").status == "healthy"
    assert telemetry.health.ready


def test_stop_kills_a_script_in_flight(telemetry: Telemetry, tmp_path: Path) -> None:
    """Stopping the runner kills scripts still running (their process group)."""
    pid_file = tmp_path / "pid"
    telemetry.add_health_check(
        "script", ScriptCheck(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"]), timeout=60
    )
    telemetry.start_health_checks(thread=True)
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    pid = int(pid_file.read_text())
    telemetry.stop_health_checks()
    wait_until(lambda: process_gone(pid))
    assert not telemetry.health.needs_start  # stopped on purpose: probes do not restart it


async def test_task_runner_runs_on_the_loop_in_a_clean_context(telemetry: Telemetry) -> None:
    """Under ASGI the runner is a task on the app's loop that carries no request's context."""
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("rid", default="-")
    seen: list[tuple[int, str]] = []

    async def check() -> None:
        seen.append((threading.get_ident(), request_id.get()))

    telemetry.add_health_check("db", check, interval=0.01)
    request_id.set("req-1")  # as if started from inside a request
    telemetry.start_health_checks(thread=False)
    await async_wait_until(lambda: len(seen) >= 2)
    assert set(seen) == {(threading.get_ident(), "-")}
    await telemetry.health.stop_async()
    count = len(seen)
    await asyncio.sleep(0.05)
    assert len(seen) == count


async def test_event_loop_lag_fails_liveness(make_captured: MakeCaptured) -> None:
    """With max_event_loop_lag, /health answers 503 after the loop was blocked, 200 again
    once timers run on time."""
    captured = make_captured({"health": {"max_event_loop_lag": "100ms"}})
    telemetry = captured.telemetry
    telemetry.start_health_checks(thread=False)
    await asyncio.sleep(0.06)  # the monitor has sampled at least once

    def liveness() -> tuple[int, Any]:
        status, _headers, body = telemetry.endpoints["/health"]({})
        return status, json.loads(body)

    time.sleep(0.4)  # blocks the loop: the monitor's timer is now 0.3s late at least
    status, body = liveness()
    assert (status, body["status"], body["event_loop_lag_limit_ms"]) == (
        503,
        "event_loop_lagging",
        100.0,
    )
    assert body["event_loop_lag_ms"] >= 300
    await async_wait_until(lambda: liveness()[0] == 200)
    assert liveness()[1]["status"] == "ok"


# Python 3.12+ warns about fork() in a threaded process: forking one is what is tested here.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_worker_runs_its_own_checks(telemetry: Telemetry, tmp_path: Path) -> None:
    """A worker forked while the runner thread works (gunicorn --preload) starts its own
    runner and checks in its own process; the parent's keeps going."""
    pids = tmp_path / "pids"

    def check() -> None:
        with open(pids, "a") as out:
            out.write(f"{os.getpid()}\n")

    telemetry.add_health_check("db", check, interval=0.005)
    telemetry.start_health_checks(thread=True)
    wait_until(lambda: pids.exists())
    pid = os.fork()
    if pid == 0:  # the child: wait for a round of its own, then leave without cleanup
        code = 1
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                ran_here = str(os.getpid()) in pids.read_text().split()
                if ran_here and telemetry.health.snapshot("db").runs >= 1:
                    code = 0
                    break
                time.sleep(0.005)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent_runs = pids.read_text().split().count(str(os.getpid()))
    wait_until(lambda: pids.read_text().split().count(str(os.getpid())) > parent_runs)
