"""The periodic push every metric output builds on: collect, send, back off, report, count.

An output is a :class:`PushOutput` subclass with one method, ``export(snapshot, timeout)``,
which sends one :class:`Snapshot` of the registry (raising :class:`ExportError`, or any
exception, when it could not). The base does the rest:

- a thread per output, started with it and again in a forked child (``_forksafe``), that
  collects the Telemetry's metrics every ``interval`` (in multiprocess mode the merged view of
  every worker, as ``/metrics`` renders it) and calls ``export``;
- ``merged = True`` (remote write, Datadog, OTLP: cumulative values of the whole service): in
  multiprocess mode exactly one process pushes at a time, the one holding a non-blocking
  ``flock`` on a file in the multiprocess directory; a worker that dies releases it and
  another takes over at its next tick. ``merged = False`` (StatsD: each worker its own deltas):
  every process pushes;
- bounded memory: at most one snapshot waits for a retry; a newer one replaces it (its samples
  counted as dropped), so nothing grows while a backend is down;
- retries after a pause growing from 1 s to 30 s (or the backend's ``Retry-After``) when the
  error is retryable, none when it is not (``ExportError(retry=False)``: a 4xx);
- every sample collected and not delivered counted in
  ``telemetry_metrics_dropped_total{exporter, reason}``: ``export_failed`` (replaced by a newer
  snapshot while the backend failed), ``rejected`` (refused for good), ``shutdown`` (still
  waiting when the shutdown budget ran out);
- one ``Metric export failed: <cause> to <where>`` warning per report period (30 s);
- ``flush(timeout)`` collects and sends now; ``shutdown(timeout)`` flushes within the budget,
  counts what is left, gives up the push lock and calls ``close()``.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import logging
import os
import threading
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from ..._forksafe import ForkLock, register_at_fork
from ...tracing._batch import describe_failure

__all__ = ["ExportError", "PushOutput", "Snapshot"]

_log = logging.getLogger("telemetry_web.metrics")

# Samples that are not series of their own for a push backend (OpenMetrics creation times).
_SKIPPED_SUFFIXES = ("_created",)


@dataclass(frozen=True)
class Snapshot:
    """The registry at one instant: its metric families and the time they were read."""

    families: tuple[Any, ...]  # prometheus_client.Metric
    timestamp_ms: int
    samples: int  # what a drop of this snapshot counts

    def series(self) -> Iterator[tuple[Any, Sample]]:
        """Every ``(family, sample)`` a push backend stores (``_created`` samples left out)."""
        for family in self.families:
            for sample in family.samples:
                if not sample.name.endswith(_SKIPPED_SUFFIXES):
                    yield family, sample


def _snapshot(families: list[Any]) -> Snapshot:
    count = sum(1 for f in families for s in f.samples if not s.name.endswith(_SKIPPED_SUFFIXES))
    return Snapshot(tuple(families), int(time.time() * 1000), count)


class ExportError(Exception):
    """Raised by ``export``: ``cause`` says what went wrong (``HTTP 503: overloaded``).

    Args:
        retry: whether sending the same snapshot again may succeed (5xx, 429); a 4xx may not.
        retry_after: the backend's requested pause in seconds, if it gave one.
    """

    def __init__(self, cause: str, *, retry: bool = True, retry_after: float | None = None):
        super().__init__(cause)
        self.cause = cause
        self.retry = retry
        self.retry_after = retry_after


class _PushLock:
    """A non-blocking ``flock`` on ``path``: held by one process at a time, released by the
    kernel when its holder dies."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: typing.IO[str] | None = None

    def held(self) -> bool:
        if self._file is not None:
            return True
        try:
            handle = open(self.path, "a")  # noqa: SIM115 (kept open while the lock is held)
        except OSError:
            return False
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def forget(self) -> None:
        """In a forked child: close our copy without unlocking (the parent still holds it)."""
        handle, self._file = self._file, None
        if handle is not None:
            handle.close()


class PushOutput(abc.ABC):
    """A metric output that pushes the registry every ``interval`` seconds from a thread.

    Args:
        name: the ``exporter`` label of ``telemetry_metrics_dropped_total``.
        where: the destination as messages show it (no credentials).
        interval: seconds between two collections.
        timeout: the limit handed to ``export`` for one attempt.
        source: what to collect (the Telemetry's registry, or the merged workers' files).
        dropped: ``telemetry_metrics_dropped_total`` (``labels(exporter, reason).inc(n)``).
        shared_dir: the multiprocess directory, when values are shared between workers.
    """

    kind: ClassVar[str] = ""  # the `type` of its `metrics.exporters` entry
    merged: ClassVar[bool] = True  # one process pushes the merged registry at a time
    REPORT_PERIOD: ClassVar[float] = 30.0
    FIRST_BACKOFF: ClassVar[float] = 1.0
    MAX_BACKOFF: ClassVar[float] = 30.0

    def __init__(
        self,
        *,
        name: str,
        where: str,
        interval: float,
        timeout: float,
        source: Collector,
        dropped: Any,
        shared_dir: str | None = None,
        report_period: float | None = None,
    ) -> None:
        self.name = name
        self.where = where
        self.interval = interval
        self.timeout = timeout
        self.report_period = self.REPORT_PERIOD if report_period is None else report_period
        self._source = source
        self._dropped = {r: dropped.labels(name, r) for r in ("export_failed", "rejected",
                                                              "shutdown")}  # fmt: skip
        self._push_lock: _PushLock | None = None
        if shared_dir and self.merged:
            self._push_lock = _PushLock(
                os.path.join(shared_dir, f".telemetry-web-push-{name}.lock")
            )
        # Held while collecting: prometheus-client's value locks must not be held by this
        # thread when a worker is forked.
        self._collecting = ForkLock(after_in_child=self._after_fork_in_child)
        self._started = False
        self._reset_state()
        register_at_fork(before=self._before_fork, after_in_parent=self._after_fork_in_parent)

    # --- what an output implements ------------------------------------------------------------

    @abc.abstractmethod
    def export(self, snapshot: Snapshot, timeout: float) -> None:
        """Send ``snapshot``; raise :class:`ExportError` (or anything) when it was not taken."""

    def close(self) -> None:  # noqa: B027 (optional: most outputs hold nothing)
        """Release what the output holds (connections, sockets); called once, at shutdown."""

    def describe_endpoint(self) -> str:
        return self.where

    # --- state ----------------------------------------------------------------------------

    def _reset_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: Snapshot | None = None  # the snapshot waiting for (another) attempt
        self._retry_at = 0.0
        self._backoff = 0.0
        self._flush_asked = 0
        self._flush_done = 0
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._dropped_unreported = 0
        self._failures_unreported = 0
        self._last_report = float("-inf")

    def start(self) -> None:
        """Start the thread (the engine does when it builds the output)."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        self._started = True
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(
                target=self._run, name=f"telemetry-web-metrics-{self.name}", daemon=True
            )
            self._thread.start()

    @property
    def pending_samples(self) -> int:
        """Samples collected and waiting for a retry (at most one snapshot's)."""
        pending = self._pending
        return pending.samples if pending is not None else 0

    # --- the worker -------------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic() + self.interval
        while True:
            with self._lock:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    asked = self._flush_asked
                    collect = asked > self._flush_done or now >= next_tick
                    retry = self._pending is not None and now >= self._retry_at
                    if collect or retry:
                        break
                    wake = next_tick if self._pending is None else min(next_tick, self._retry_at)
                    self._wake.wait(wake - now)
            if collect:
                next_tick = now + self.interval
                self._collect()
            if self._pending is not None and time.monotonic() >= self._retry_at:
                self._attempt()
            with self._lock:
                self._flush_done = max(self._flush_done, asked)
                self._wake.notify_all()

    def _collect(self) -> None:
        if self._push_lock is not None and not self._push_lock.held():
            return  # another worker pushes the merged values
        try:
            with self._collecting:
                families = list(self._source.collect())
        except Exception:  # a broken collector must not kill the thread
            _log.warning("metric output %s could not collect the metrics", self.name,
                         exc_info=True)  # fmt: skip
            return
        snapshot = _snapshot(families)
        with self._lock:
            if self._stopped:
                return
            replaced, self._pending = self._pending, snapshot
        if replaced is not None:
            self._drop("export_failed", replaced.samples)

    def _attempt(self) -> None:
        snapshot = self._pending
        if snapshot is None:
            return
        error: BaseException | None = None
        try:
            with suppress_instrumentation():  # our own HTTP calls are not the app's
                self.export(snapshot, self.timeout)
        except Exception as exc:
            error = exc
        with self._lock:
            current = self._pending is snapshot
            if current and (error is None or not _retryable(error)):
                self._pending = None
        if error is None:
            self._backoff = 0.0
            return
        if not _retryable(error):
            if current:
                self._drop("rejected", snapshot.samples)
        else:
            self._backoff = min(self.MAX_BACKOFF, max(self.FIRST_BACKOFF, self._backoff * 2))
            pause = self._backoff
            if isinstance(error, ExportError) and error.retry_after is not None:
                pause = max(pause, error.retry_after)
            self._retry_at = time.monotonic() + pause
        self._report(error)

    def _drop(self, reason: str, samples: int) -> None:
        if samples:
            self._dropped[reason].inc(samples)
            self._dropped_unreported += samples

    def _report(self, error: BaseException) -> None:
        self._failures_unreported += 1
        now = time.monotonic()
        if now - self._last_report < self.report_period:
            return
        if isinstance(error, ExportError):
            cause = f"{error.cause} to {self.where}"
        else:
            cause = describe_failure(typing.cast(Any, self), [], error)
        _log.warning(
            "Metric export failed: %s (exporter %s; %d failed attempts and %d samples dropped "
            "since the last report; next report in %ds at the earliest)",
            cause,
            self.name,
            self._failures_unreported,
            self._dropped_unreported,
            self.report_period,
        )
        self._last_report = now
        self._failures_unreported = 0
        self._dropped_unreported = 0

    # --- flush and shutdown -------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Collect and send now; False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        if self._pid != os.getpid():  # forked without the hooks (os.fork in C code)
            self._after_fork_in_child()
        with self._lock:
            if self._stopped:
                return True
            self._start_locked()
            self._flush_asked += 1
            target = self._flush_asked
            self._retry_at = 0.0  # one more attempt, now
            self._wake.notify_all()
            while self._flush_done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush within ``timeout`` seconds, count what is left as ``shutdown``, stop."""
        self.flush(timeout)
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            left, self._pending = self._pending, None
            self._wake.notify_all()
        if left is not None:
            self._drop("shutdown", left.samples)
        if self._push_lock is not None:
            self._push_lock.release()
        try:
            self.close()
        except Exception:
            _log.debug("metric output %s failed to close", self.name, exc_info=True)

    # --- fork -----------------------------------------------------------------------------

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The parent pushes what it collected; the child starts empty, with its own thread.
        stopped = self._stopped
        self._reset_state()
        self._stopped = stopped
        if self._push_lock is not None:
            self._push_lock.forget()
        if self._started and not stopped:
            self.start()


def _retryable(error: BaseException) -> bool:
    return not isinstance(error, ExportError) or error.retry
