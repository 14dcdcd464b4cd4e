"""The metric history: a snapshot of every metric family, every ``scrape_interval``, in the store.

With no metric backend configured, :class:`MetricSnapshotter` keeps what ``/metrics`` shows
over time, so that ``telemetry metrics list`` and ``telemetry metrics query`` can answer
without a Prometheus server::

    metrics:
      collectors:
        prometheus:
          scrape_interval: 15s   # one snapshot of every family
          retention: 15d         # default: store.retention

Several workers write one history: only the process holding a non-blocking ``flock`` takes
snapshots (of the merged multiprocess view when there is one); the others try again every
interval, so when the holder exits (or is killed: the kernel drops its lock) another worker
takes over. The work runs on a daemon thread, never on the request path; one snapshot is
one transaction, and while the store cannot be written each snapshot is dropped, counted in
``telemetry_metrics_dropped_total{exporter="store",reason="store_unavailable"}`` and reported
once per period on stderr.

Rows: ``metric_series`` holds each sample name and label set once (a histogram as its
``_bucket``/``_sum``/``_count`` series), ``metric_points`` one ``(series_id, ts, value)`` per
series per snapshot (a ``WITHOUT ROWID`` table keyed by series then time: a series' points are
stored together and read by range), ``metric_snapshots`` the time of each snapshot.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client.registry import Collector

from .._forksafe import ForkLock
from ._db import FIRST_BACKOFF, MAX_BACKOFF, PRUNE_EVERY, REPORT_EVERY, SQLiteStore, describe

__all__ = ["METRICS_DROPPED", "MetricSnapshotter", "MetricStore", "sample_rows"]

METRICS_DROPPED = "telemetry_metrics_dropped_total"
MAX_SAMPLES = 100_000  # per snapshot: a registry past this is cut (and the rest counted dropped)

# (family as queried, sample name, type, labels JSON, help, value)
Row = tuple[str, str, str, str, str, float]


def _family_name(family: Any) -> str:
    """The name queries use: a counter's with ``_total``, a histogram's base name."""
    if family.type == "counter" and not family.name.endswith("_total"):
        return f"{family.name}_total"
    return str(family.name)


def sample_rows(families: Iterable[Any], limit: int = MAX_SAMPLES) -> tuple[list[Row], int]:
    """The rows of one snapshot (``*_created`` samples and families left out, each family
    once) and how many samples were cut past ``limit``."""
    rows: list[Row] = []
    seen: set[str] = set()
    cut = 0
    created = set()
    families = list(families)
    for family in families:
        if family.type in ("counter", "histogram", "summary", "gaugehistogram"):
            created.add(f"{family.name}_created")
    for family in families:
        if family.name in seen or (family.type == "gauge" and family.name in created):
            continue
        seen.add(family.name)
        name = _family_name(family)
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            if len(rows) >= limit:
                cut += 1
                continue
            labels = json.dumps(sample.labels, sort_keys=True, separators=(",", ":"))
            rows.append(
                (name, sample.name, family.type, labels, family.documentation, float(sample.value))
            )
    return rows, cut


class _Reporter:
    """One ``Metric history unavailable`` line per store file per period, with the drops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def failed(self, path: str, cause: str, samples: int) -> None:
        with self._lock:
            self._dropped[path] = self._dropped.get(path, 0) + samples
            now = time.monotonic()
            if now - self._last.get(path, float("-inf")) < REPORT_EVERY:
                return
            self._last[path] = now
            dropped, self._dropped[path] = self._dropped[path], 0
        print(
            f"telemetry-web: Metric history unavailable: {cause} ({path}); requests are still "
            f"served, {dropped} metric samples dropped; next report in {int(REPORT_EVERY)}s "
            "at the earliest",
            file=sys.stderr,
            flush=True,
        )

    def reset(self) -> None:
        with self._lock:
            self._last.clear()
            self._dropped.clear()


REPORTER = _Reporter()


class MetricStore(SQLiteStore):
    """The store file, written one snapshot per transaction; series ids cached per process."""

    def __init__(self, path: str, *, retention: float, busy_timeout: float = 5.0) -> None:
        super().__init__(path, retention=retention, busy_timeout=busy_timeout)
        self._ids: dict[tuple[str, str], int] = {}
        self._ids_for: sqlite3.Connection | None = None

    def write_snapshot(self, ts: float, rows: Sequence[Row]) -> None:
        """Insert one snapshot taken at ``ts`` (epoch seconds); prune past ``retention`` at most
        once a minute.

        Raises:
            StoreUnavailable: nothing was written (reported once per period).
        """
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                self._fail_snapshot(None, len(rows))
            try:
                conn = self._connect()
                if conn is not self._ids_for:  # another file (or process): ids are its own
                    self._ids, self._ids_for = {}, conn
                millis = int(ts * 1000)
                conn.execute("BEGIN IMMEDIATE")
                try:
                    points = [(self._series_id(conn, row), millis, row[5]) for row in rows]
                    conn.executemany(
                        "INSERT OR REPLACE INTO metric_points (series_id, ts, value) "
                        "VALUES (?, ?, ?)",
                        points,
                    )
                    conn.execute(
                        "INSERT OR REPLACE INTO metric_snapshots (ts, samples) VALUES (?, ?)",
                        (millis, len(rows)),
                    )
                    if now - self._last_prune >= PRUNE_EVERY:
                        self._prune_metrics(conn, ts)
                        self._last_prune = now
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self._ids = {}  # ids inserted by the rolled-back transaction are gone
                    raise
            except (sqlite3.Error, OSError) as exc:
                self._backoff = min(MAX_BACKOFF, max(FIRST_BACKOFF, self._backoff * 2))
                self._retry_at = time.monotonic() + self._backoff
                self._close_quietly()
                self._fail_snapshot(exc, len(rows))
            self._backoff = 0.0

    def _series_id(self, conn: sqlite3.Connection, row: Row) -> int:
        key = (row[1], row[3])
        found = self._ids.get(key)
        if found is not None:
            return found
        conn.execute(
            "INSERT OR IGNORE INTO metric_series (family, name, type, labels, help) "
            "VALUES (?, ?, ?, ?, ?)",
            (row[0], row[1], row[2], row[3], row[4]),
        )
        found = conn.execute(
            "SELECT id FROM metric_series WHERE name = ? AND labels = ?", key
        ).fetchone()[0]
        self._ids[key] = found
        return int(found)

    def _prune_metrics(self, conn: sqlite3.Connection, now: float) -> None:
        """Points older than ``retention`` (a range per series on the primary key), then the
        snapshots and the series left without points."""
        cutoff = int((now - self.retention) * 1000)
        conn.execute(
            "DELETE FROM metric_points WHERE series_id IN (SELECT id FROM metric_series) "
            "AND ts < ?",
            (cutoff,),
        )
        conn.execute("DELETE FROM metric_snapshots WHERE ts < ?", (cutoff,))
        gone = conn.execute(
            "DELETE FROM metric_series WHERE NOT EXISTS "
            "(SELECT 1 FROM metric_points WHERE series_id = metric_series.id)"
        ).rowcount
        if gone:
            self._ids = {}

    def prune_metrics(self, now: float | None = None) -> None:
        """Delete the history older than ``retention`` now (snapshots do it once a minute)."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._prune_metrics(conn, time.time() if now is None else now)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _fail_snapshot(self, exc: BaseException | None, samples: int) -> None:
        from ._db import StoreUnavailable

        if exc is not None:
            self._last_error = describe(exc)
        REPORTER.failed(self.path, self._last_error, samples)
        raise StoreUnavailable(f"Metric history unavailable: {self._last_error} ({self.path})")


class _Leadership:
    """A non-blocking exclusive ``flock`` on one file, held while this process snapshots."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_take(self) -> bool:
        if self._fd is not None:
            return True
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def forget_after_fork(self) -> None:
        """In a forked child: close our copy of the descriptor without unlocking (the lock
        belongs to the open file the parent still holds)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def lock_path(store_path: str, service: str, multiprocess_dir: str | None) -> str:
    """Where the snapshot lock lives: in the multiprocess directory (its workers share one
    merged view), else next to the store, one per service (processes that do not share their
    values must not interleave one history)."""
    if multiprocess_dir is not None:
        return os.path.join(multiprocess_dir, ".telemetry-web-history.lock")
    digest = hashlib.sha1(service.encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{os.path.abspath(os.path.expanduser(store_path))}.metrics-{digest}.lock"


class MetricSnapshotter:
    """Snapshots ``collectors`` into the store every ``interval`` seconds, on a daemon thread,
    while this process holds the snapshot lock.

    Args:
        collectors: what ``/metrics`` renders (the merged multiprocess collector, or the
            Telemetry's registry and prometheus-client's default one); a family seen twice is
            kept once.
        dropped: the ``telemetry_metrics_dropped_total{exporter,reason}`` metric, or None.
        clock: wall-clock time (tests pass a manual one).
    """

    def __init__(
        self,
        collectors: Sequence[Collector],
        *,
        store_path: str,
        lock_file: str,
        interval: float,
        retention: float,
        busy_timeout: float = 5.0,
        dropped: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval = interval
        self.store = MetricStore(store_path, retention=retention, busy_timeout=busy_timeout)
        self._collectors = tuple(collectors)
        self._leader = _Leadership(lock_file)
        self._dropped = dropped
        self._clock = clock
        self._snapshots = 0
        self._started = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Held while collecting and writing, and taken before fork(): the collectors take
        # prometheus-client's locks, which no forked child may inherit held.
        self._working = ForkLock(after_in_child=self._after_fork)

    # --- thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (idempotent); the first snapshot is one interval away."""
        if self._started:
            return
        self._started = True
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="telemetry-metric-history", daemon=True
        )
        self._thread.start()

    def _after_fork(self) -> None:
        self._leader.forget_after_fork()
        self._snapshots = 0
        was_running = self._started and not self._stop.is_set()
        self._started = False
        if was_running:
            self.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self._delay()):
            self.tick()

    def _delay(self) -> float:
        """Until the next multiple of the interval: snapshots of one history line up."""
        now = self._clock()
        return self.interval - (now % self.interval) or self.interval

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread; when this process has been writing the history, take a last
        snapshot (what happened since the previous one) and let another worker take over."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._working:
            if self._leader.held and self._snapshots:
                self._snapshot()
            self._leader.release()
            self.store.close()

    # --- one snapshot -----------------------------------------------------------------------

    def tick(self) -> bool:
        """Take a snapshot if this process holds (or can take) the lock; whether it did."""
        with self._working:
            if not self._leader.try_take():
                return False
            return self._snapshot()

    def _snapshot(self) -> bool:
        from ._db import StoreUnavailable

        try:
            rows, cut = sample_rows(self._collect())
        except Exception:  # a user collector failing must not stop the history
            return False
        if cut:
            self._count(cut, "too_many_samples")
        try:
            self.store.write_snapshot(self._clock(), rows)
        except StoreUnavailable:
            self._count(len(rows), "store_unavailable")
            return False
        self._snapshots += 1
        return True

    def _collect(self) -> list[Any]:
        families: list[Any] = []
        for collector in self._collectors:
            families.extend(collector.collect())
        return families

    def _count(self, samples: int, reason: str) -> None:
        if self._dropped is not None and samples:
            self._dropped.labels("store", reason).inc(samples)
