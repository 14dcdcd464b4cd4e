"""prometheus-client's multiprocess mode, finished: several workers, one ``/metrics``.

- Every worker writes its samples to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``; any
  worker answering a scrape merges all of them (:class:`MultiprocessCollector`).
- A worker that is gone is *retired*: its live gauges (requests in progress) are removed, and its
  counters and histograms are folded into ``*_archive.db`` files so that totals are kept and the
  directory does not grow with every recycled worker. Gunicorn's master retires each worker that
  exits (``telemetry_web.gunicorn``); a scrape retires workers whose process no longer exists
  (uvicorn's workers, killed workers).
- Process metrics (memory, CPU, open fds, GC), which prometheus-client cannot collect across
  processes, are written by each worker as gauges labelled with its ``pid``.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from .._forksafe import ForkLock, pid_alive
from ._registry import Metric, MetricSet

__all__ = [
    "MultiprocessCollector",
    "ProcessMetrics",
    "multiprocess_dir",
    "retire_dead_workers",
    "retire_worker",
]

_PID_FILE = re.compile(r"^(counter|histogram|summary|gauge_[a-z]+)_(\d+)\.db$")
_FOLDED_TYPES = ("counter", "histogram", "summary")


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus-client writes its values there."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    with open(os.path.join(path, ".telemetry-web.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def retire_worker(pid: int, path: str | None = None) -> None:
    """Remove a finished worker's live gauges and fold its totals into the archive files."""
    path = path or multiprocess_dir()
    if path is None:
        return
    with _locked(path):
        _retire(pid, path)


def _retire(pid: int, path: str) -> None:
    """retire_worker's work; the caller holds the directory lock."""
    multiprocess.mark_process_dead(pid, path)
    for kind in _FOLDED_TYPES:
        source = os.path.join(path, f"{kind}_{pid}.db")
        if not os.path.exists(source):
            continue
        archive = MmapedDict(os.path.join(path, f"{kind}_archive.db"))
        try:
            for key, value, timestamp, _pos in MmapedDict.read_all_values_from_file(source):
                current, _ = archive.read_value(key)
                archive.write_value(key, current + value, timestamp)
        finally:
            archive.close()
        os.remove(source)


def retire_dead_workers(path: str) -> None:
    """Retire every worker that has files in ``path`` but no process any more.

    The caller holds the directory lock.
    """
    pids = set()
    for name in os.listdir(path):
        match = _PID_FILE.match(name)
        if match:
            pids.add(int(match.group(2)))
    for pid in pids:
        if pid != os.getpid() and not pid_alive(pid):
            _retire(pid, path)


class MultiprocessCollector(Collector):
    """All workers' samples, merged; dead workers retired first."""

    def __init__(self, path: str, before_collect: Any = None) -> None:
        self._path = path
        self._before = before_collect
        self._registry = CollectorRegistry()
        self._collector = multiprocess.MultiProcessCollector(self._registry, path)

    def collect(self) -> Iterator[Any]:
        if self._before is not None:
            self._before()
        # Under the lock that folding takes: a worker's file is never read half-folded
        # (counted twice, or missing between the directory listing and the read).
        with _locked(self._path):
            try:
                retire_dead_workers(self._path)
            except OSError:
                pass  # a scrape is still worth answering
            families = list(self._collector.collect())
        yield from families


class ProcessMetrics:
    """This worker's process metrics, written for the multiprocess collector every few seconds."""

    def __init__(self, metrics: MetricSet, interval: float = 5.0) -> None:
        def gauge(name: str, text: str) -> Metric:
            return (
                metrics.builder("gauge", name)
                .with_description(text)
                .with_multiprocess_mode("liveall")  # one series per live worker, labelled by pid
                .register()
            )

        self._gauges = {
            "process_resident_memory_bytes": gauge(
                "process_resident_memory_bytes", "Resident memory size in bytes."
            ),
            "process_virtual_memory_bytes": gauge(
                "process_virtual_memory_bytes", "Virtual memory size in bytes."
            ),
            "process_open_fds": gauge("process_open_fds", "Number of open file descriptors."),
            "process_start_time_seconds": gauge(
                "process_start_time_seconds", "Start time of the process since the epoch."
            ),
            "process_cpu_seconds": gauge(
                "process_cpu_seconds", "CPU time (user and system) this worker has used."
            ),
        }
        self._gc = (
            metrics.builder("counter", "python_gc_collections_total")
            .with_description("Garbage collections, by generation, all workers.")
            .with_label_keys("generation")
            .register()
        )
        self._gc_seen = [0, 0, 0]
        self._source = ProcessCollector(registry=None)
        self._interval = interval
        self._stop = threading.Event()
        # Held while refreshing and taken before fork(): prometheus-client's value lock must
        # not be held by this thread at the moment a worker is forked (it would never be freed).
        self._refreshing = ForkLock(after_in_child=self._after_fork)
        self._start()

    def _after_fork(self) -> None:
        if not self._stop.is_set():
            self._start()

    def _start(self) -> None:
        self._gc_seen = [s["collections"] for s in gc.get_stats()]
        self._stop = threading.Event()
        self.refresh()  # this worker's series exist from its start
        thread = threading.Thread(target=self._run, name="telemetry-process-metrics", daemon=True)
        thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.refresh()

    def refresh(self) -> None:
        with self._refreshing:
            self._refresh()

    def _refresh(self) -> None:
        try:
            for family in self._source.collect():
                for sample in family.samples:
                    name = sample.name.removesuffix("_total")
                    target = self._gauges.get(name)
                    if target is not None:
                        target.set(sample.value)
            for generation, stats in enumerate(gc.get_stats()):
                delta = stats["collections"] - self._gc_seen[generation]
                if delta > 0:
                    self._gc.labels(str(generation)).inc(delta)
                    self._gc_seen[generation] = stats["collections"]
        except Exception:  # /proc unreadable: the metrics stay as they were
            pass

    def stop(self) -> None:
        self._stop.set()
