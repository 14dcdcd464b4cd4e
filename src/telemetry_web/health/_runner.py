"""Running the checks in the background, each at its own interval, each cut at its timeout.

One scheduler coroutine drives every check of a :class:`~telemetry_web.health.Health`. It is
hosted either as a task on the app's event loop (:class:`TaskHost`, started by the ASGI
lifespan) or on a private loop in a daemon thread (:class:`ThreadHost`, WSGI, Flask, Django).
Probe requests only read the latest snapshots: no check ever runs inside a request.

- Async checks are awaited on the loop; a run still going at its timeout is cancelled.
- Blocking checks run in a daemon thread of their own per run (never a pool a hung check could
  exhaust, never a thread that blocks interpreter exit). At the timeout the run counts as a
  failure; while that thread is still stuck, the check is not started again, and each of its
  later turns is recorded as a failure naming how long it has been stuck.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ._checks import Check, error_text, to_outcome
from ._state import CheckOptions, Clock, Outcome, Snapshot

__all__ = ["Entry", "Scheduler", "TaskHost", "ThreadHost", "execute"]

# Extra time a check that keeps its own deadline (scripts, sockets) gets to report it itself.
GRACE = 0.5
# Event loop lag is sampled this often (at most; twice per configured limit when smaller).
LAG_SAMPLE_INTERVAL = 0.5


class Entry:
    """One registered check: what to run, how, and the latest snapshot."""

    __slots__ = ("busy_since", "check", "due", "name", "options", "running", "snapshot", "source")

    def __init__(self, name: str, check: Check, options: CheckOptions, source: str) -> None:
        self.name = name
        self.check = check
        self.options = options
        self.source = source  # "config" or "code": reconfiguring replaces the config ones only
        self.snapshot = Snapshot()
        self.due: float | None = None  # time.monotonic() of the next run
        self.running = False
        self.busy_since: float | None = None  # a blocking run past its timeout, still going


async def execute(entry: Entry, clock: Clock) -> tuple[Outcome, float]:
    """Run ``entry``'s check once: its outcome and duration (seconds, by ``clock``)."""
    check, timeout = entry.check, entry.options.timeout
    stuck_since = entry.busy_since
    if stuck_since is not None:
        stuck = time.monotonic() - stuck_since
        return Outcome(False, f"still running {stuck:.1f}s after it started; not run again"), 0.0
    started = clock.monotonic()
    limit = timeout + GRACE if check.enforces_timeout else timeout
    try:
        if check.is_async:
            outcome = await _run_async(entry, check, timeout, limit)
        else:
            outcome = await _run_in_thread(entry, check, timeout, limit)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        outcome = Outcome(False, error_text(exc))
    return outcome, max(0.0, clock.monotonic() - started)


def _timed_out(limit: float) -> Outcome:
    return Outcome(False, f"timed out after {limit:g}s")


async def _run_async(entry: Entry, check: Check, timeout: float, limit: float) -> Outcome:
    result = check.run(timeout)
    if not inspect.isawaitable(result):
        return to_outcome(result)
    task = asyncio.ensure_future(result)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if task in done:
        return to_outcome(task.result())
    task.cancel()
    if not task.done():  # a coroutine that ignores cancellation: do not start it again
        entry.busy_since = time.monotonic()

        def settled(_task: asyncio.Future[Any]) -> None:
            entry.busy_since = None
            if not _task.cancelled():
                _task.exception()  # retrieved: no "never retrieved" warning

        task.add_done_callback(settled)
    return _timed_out(timeout)


async def _run_in_thread(entry: Entry, check: Check, timeout: float, limit: float) -> Outcome:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Outcome] = loop.create_future()

    def deliver(outcome: Outcome | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome or Outcome(True))

    def work() -> None:
        outcome: Outcome | None = None
        error: BaseException | None = None
        try:
            value = check.run(timeout)
            if inspect.isawaitable(value):  # a sync callable that returned a coroutine
                value = asyncio.run(_awaited(value))
            outcome = to_outcome(value)
        except Exception as exc:
            error = exc
        except BaseException as exc:  # SystemExit in a check: a failure, not our exit
            error = RuntimeError(error_text(exc))
        finally:
            entry.busy_since = None
        try:
            loop.call_soon_threadsafe(deliver, outcome, error)
        except RuntimeError:  # the loop is closed: nobody waits for this result any more
            pass

    entry.busy_since = time.monotonic()
    thread = threading.Thread(target=work, name=f"telemetry-health-{entry.name}", daemon=True)
    thread.start()
    done, _ = await asyncio.wait({future}, timeout=limit)
    if future in done:
        return future.result()
    future.cancel()
    return _timed_out(timeout)


async def _awaited(value: Any) -> Any:
    return await value


class Scheduler:
    """Runs due checks until stopped; woken early when checks are added or removed."""

    def __init__(
        self,
        entries: Callable[[], list[Entry]],
        record: Callable[[Entry, Outcome, float], None],
        clock: Callable[[], Clock],
    ) -> None:
        self._entries = entries
        self._record = record
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                now = time.monotonic()
                waiting: list[float] = []
                for entry in self._entries():
                    if entry.running:
                        continue
                    if entry.due is None or entry.due <= now:
                        entry.due = now + entry.options.interval
                        entry.running = True
                        task = asyncio.ensure_future(self._run(entry))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    waiting.append(entry.due)
                wake.clear()
                delay = min(waiting) - now if waiting else 3600.0
                try:
                    await asyncio.wait_for(wake.wait(), max(0.0, delay))
                except asyncio.TimeoutError:
                    pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, entry: Entry) -> None:
        try:
            outcome, duration = await execute(entry, self._clock())
            if not self._stopping:
                self._record(entry, outcome, duration)
        finally:
            entry.running = False
            if self._wake is not None:
                self._wake.set()  # a run longer than its interval is due again at once

    def wake(self) -> None:
        """Look at the checks again (from any thread)."""
        self._call(lambda: None)

    def stop(self) -> None:
        """Finish the scheduler (from any thread); runs in flight are cancelled."""
        self._stopping = True
        self._call(lambda: None)

    def _call(self, action: Callable[[], None]) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return

        def run() -> None:
            action()
            wake.set()

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:  # closed meanwhile
            pass


class LagMonitor:
    """Samples how late the event loop runs a timer: the liveness endpoint's loop lag."""

    def __init__(self, limit: float) -> None:
        self.interval = min(LAG_SAMPLE_INTERVAL, limit / 2)
        self.lag = 0.0
        self._expected: float | None = None

    def current(self) -> float:
        """The last sample, or how overdue the pending one already is, whichever is larger."""
        expected = self._expected
        overdue = time.monotonic() - expected if expected is not None else 0.0
        return max(self.lag, overdue)

    async def run(self) -> None:
        while True:
            self._expected = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            self.lag = max(0.0, time.monotonic() - self._expected)


class ThreadHost:
    """The scheduler on a private event loop in a daemon thread (WSGI servers, Django)."""

    kind = "thread"

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._thread = threading.Thread(
            target=self._main, name="telemetry-health", daemon=True
        )  # threads start with an empty context: no request's ids leak into check log lines
        self._thread.start()

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.scheduler.run())
        finally:
            loop.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float) -> None:
        self.scheduler.stop()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


class TaskHost:
    """The scheduler (and the loop lag monitor) as tasks on the app's event loop (ASGI)."""

    kind = "task"

    def __init__(self, scheduler: Scheduler, lag: LagMonitor | None) -> None:
        self.scheduler = scheduler
        self.loop = asyncio.get_running_loop()
        self.lag = lag
        # An empty context: the task must not inherit the ids of the request that started it.
        self._tasks = [_detached(self.loop, scheduler.run())]
        if lag is not None:
            self._tasks.append(_detached(self.loop, lag.run()))

    def alive(self) -> bool:
        return not self.loop.is_closed() and not self._tasks[0].done()

    def stop(self, timeout: float) -> None:
        self.scheduler.stop()
        for task in self._tasks[1:]:
            self._cancel(task)

    async def wait(self) -> None:
        """Wait for the tasks to end (call on their loop, after :meth:`stop`)."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _cancel(self, task: asyncio.Task[None]) -> None:
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:
            pass


def _detached(
    loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    return contextvars.Context().run(loop.create_task, coroutine)
