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
import json
import math
import mmap
import os
import re
import struct
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import multiprocess
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

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
def _locked(path: str, *, shared: bool = False) -> Iterator[None]:
    """The directory lock: exclusive to retire workers, shared to read the files."""
    with open(os.path.join(path, ".telemetry-web.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
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


def retire_dead_workers(path: str, *, take_lock: bool = False) -> None:
    """Retire every worker that has files in ``path`` but no process any more.

    The caller holds the directory lock, or passes ``take_lock`` to have it taken only when
    there is a dead worker to retire (then the pids are checked again under the lock).
    """
    try:
        dead = _dead_pids(path)
        if dead and take_lock:
            with _locked(path):
                for pid in _dead_pids(path):
                    _retire(pid, path)
        else:
            for pid in dead:
                _retire(pid, path)
    except OSError:
        pass  # a scrape is still worth answering


def _dead_pids(path: str) -> set[int]:
    pids = set()
    for name in os.listdir(path):
        match = _PID_FILE.match(name)
        if match:
            pids.add(int(match.group(2)))
    return {pid for pid in pids if pid != os.getpid() and not pid_alive(pid)}


class MultiprocessCollector(Collector):
    """All workers' samples, merged; dead workers retired first.

    ``render_text()`` is the ``/metrics`` fast path (Prometheus text straight from the merged
    values); ``collect()`` gives the same families as prometheus-client objects (OpenMetrics,
    the push outputs, the store's snapshots).
    """

    def __init__(self, path: str, before_collect: Any = None) -> None:
        self._path = path
        self._before = before_collect
        self._merger = _Merger()

    def _merged(self) -> dict[str, _Family]:
        if self._before is not None:
            self._before()
        retire_dead_workers(self._path, take_lock=True)
        return self._merger.merge(_read_files(self._path))

    def collect(self) -> Iterator[Any]:
        for family in sorted(self._merged().values(), key=lambda f: f.name):
            yield family.to_metric()

    def render_text(self) -> bytes:
        """Every family in the Prometheus text format (0.0.4)."""
        out: list[str] = []
        for family in sorted(self._merged().values(), key=lambda f: f.name):
            family.render(out)
        return "".join(out).encode()


# --- reading and merging the files --------------------------------------------------------------
#
# One scrape reads every file's used bytes under the shared lock (a worker is never read while
# the master folds it into the archives), then, without the lock, walks the entries adding
# values into one dict per file kind keyed by the entry's raw key bytes: the same sample has the
# same key in every worker's file (prometheus-client writes it with sorted JSON keys). Keys are
# parsed (JSON, labels rendered) once per collector, and the archives' values are summed again
# only when their bytes changed (a worker was retired).

_INT = struct.Struct("i").unpack_from
_DOUBLES = struct.Struct("dd").unpack_from
_DOUBLE = struct.Struct("d").unpack_from
_KEY_CACHE_LIMIT = 1_000_000
_GAUGE_SUM = ("sum", "livesum")
_GAUGE_MIN = ("min", "livemin")
_GAUGE_MAX = ("max", "livemax")
_GAUGE_RECENT = ("mostrecent", "livemostrecent")


def _read_files(path: str) -> list[tuple[str, str, bytes]]:
    """(kind, pid or 'archive', used bytes) of every file; under the shared directory lock."""
    found = []
    with _locked(path, shared=True):
        for name in os.listdir(path):
            if not name.endswith(".db"):
                continue
            kind, _, owner = name[:-3].rpartition("_")
            try:
                with open(os.path.join(path, name), "rb") as f:
                    data = f.read(mmap.PAGESIZE)
                    used = _INT(data, 0)[0] if len(data) >= 8 else 0
                    if used > len(data):
                        data += f.read(used - len(data))
            except FileNotFoundError:
                continue  # a live gauge file removed since the listing (prometheus-client's own)
            if used > 8:
                found.append((kind, owner, data[:used]))
    return found


def _entries(data: bytes) -> Iterator[tuple[bytes, float, float]]:
    """(key, value, timestamp) of one file's used bytes (prometheus-client's mmap layout)."""
    used, pos = len(data), 8
    while pos < used:
        length = _INT(data, pos)[0]
        if length + pos > used:
            raise RuntimeError("Read beyond file size detected, file is corrupted.")
        key = data[pos + 4 : pos + 4 + length]
        pos += length + 4 + (8 - (length + 4) % 8)
        value, timestamp = _DOUBLES(data, pos)
        pos += 16
        yield key, value, timestamp


def _add_sums(acc: dict[Any, float], data: bytes) -> None:
    """_entries, inlined for the common case (counters, histograms, summed gauges)."""
    get = acc.get
    used, pos = len(data), 8
    while pos < used:
        length = _INT(data, pos)[0]
        end = pos + 4 + length
        if end > used:
            raise RuntimeError("Read beyond file size detected, file is corrupted.")
        key = data[pos + 4 : end]
        pos = end + 8 - (length + 4) % 8
        acc[key] = get(key, 0.0) + _DOUBLE(data, pos)[0]
        pos += 16


def _add_file(acc: dict[Any, Any], kind: str, owner: str, data: bytes) -> None:
    """Add one file's entries into ``acc``, the way its kind combines across workers."""
    mode = kind[6:] if kind.startswith("gauge_") else ""
    if not mode or mode in _GAUGE_SUM:
        _add_sums(acc, data)
    elif mode in _GAUGE_MIN or mode in _GAUGE_MAX:
        pick = min if mode in _GAUGE_MIN else max
        for key, value, _ in _entries(data):
            acc[key] = pick(acc[key], value) if key in acc else value
    elif mode in _GAUGE_RECENT:
        for key, value, timestamp in _entries(data):
            if key not in acc or acc[key][0] < timestamp:
                acc[key] = (timestamp, value)
    else:  # all, liveall: one series per worker
        for key, value, _ in _entries(data):
            acc[(key, owner)] = value


class _Key:
    """One parsed entry key; one object per rendered sample (hashed by identity)."""

    __slots__ = ("family", "help", "labels", "labelstr", "le", "line", "sample")

    def __init__(self, family: str, sample: str, labels: dict[str, str], help_text: str) -> None:
        self.family = family
        self.sample = sample
        self.help = help_text
        le = labels.pop("le", None)
        self.le = float(le) if le is not None else None
        self.labels = tuple(sorted(labels.items()))  # without `le`
        self.labelstr = ",".join(f'{k}="{_escape(v)}"' for k, v in self.labels)
        if le is not None:  # the line's start: name, labels and the space before the value
            sep = "," if self.labelstr else ""
            self.line = f'{sample}{{{self.labelstr}{sep}le="{_go_float(self.le or 0.0)}"}} '
        else:
            self.line = f"{sample}{{{self.labelstr}}} " if self.labelstr else f"{sample} "


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Merger:
    """Merges files into families; keeps parsed keys and the archives' sums between scrapes."""

    def __init__(self) -> None:
        self._keys: dict[Any, _Key] = {}
        self._lines: dict[str, _Key] = {}  # keys differing only in help text are one sample
        self._archives: dict[str, tuple[bytes, dict[Any, Any]]] = {}

    def merge(self, files: list[tuple[str, str, bytes]]) -> dict[str, _Family]:
        by_kind: dict[str, dict[Any, Any]] = {}
        for kind, owner, data in files:
            if owner == "archive" and kind not in by_kind:
                by_kind[kind] = self._archive(kind, data).copy()
        for kind, owner, data in files:
            if owner != "archive":
                _add_file(by_kind.setdefault(kind, {}), kind, owner, data)
        families: dict[str, _Family] = {}
        for kind, acc in by_kind.items():
            self._into_families(families, kind, acc)
        return families

    def _archive(self, kind: str, data: bytes) -> dict[Any, Any]:
        cached = self._archives.get(kind)
        if cached is None or cached[0] != data:
            acc: dict[Any, Any] = {}
            _add_file(acc, kind, "archive", data)
            cached = self._archives[kind] = (data, acc)
        return cached[1]

    def _parse(self, raw: Any) -> _Key:
        if len(self._keys) >= _KEY_CACHE_LIMIT:
            self._keys.clear()
            self._lines.clear()
        owner = None
        if isinstance(raw, tuple):  # (key, pid) of an `all`/`liveall` gauge
            raw, owner = raw
        family, sample, labels, help_text = json.loads(raw)
        if owner is not None:
            labels["pid"] = owner
        key = _Key(family, sample, labels, help_text)
        key = self._lines.setdefault(key.line, key)
        self._keys[(raw, owner) if owner is not None else raw] = key
        return key

    def _into_families(self, families: dict[str, _Family], kind: str, acc: dict[Any, Any]) -> None:
        typ = kind.split("_", 1)[0]
        mode = kind[6:]
        summed = typ != "gauge" or mode in _GAUGE_SUM
        keys = self._keys
        family: _Family | None = None
        for raw, value in acc.items():
            key = keys.get(raw) or self._parse(raw)
            if family is None or family.name != key.family:
                family = families.get(key.family)
                if family is None:
                    family = families[key.family] = _Family(key.family, key.help, typ)
            if mode in _GAUGE_RECENT:
                value = value[1]
            if typ == "histogram":
                family.add_histogram(key, value)
            elif summed:
                family.samples[key] = family.samples.get(key, 0.0) + value
            else:
                family.samples[key] = value


class _Series:
    """One histogram series: its buckets (by `le` key), the sum, the count's line."""

    __slots__ = ("buckets", "count_line", "sum", "sum_line")

    def __init__(self, family: str, labelstr: str) -> None:
        braces = f"{{{labelstr}}}" if labelstr else ""
        self.buckets: dict[_Key, float] = {}
        self.sum = 0.0
        self.count_line = f"{family}_count{braces} "
        self.sum_line = f"{family}_sum{braces} "


class _Family:
    """One merged metric family: samples by key, or histogram series by rendered labels."""

    __slots__ = ("help", "name", "samples", "series", "type")

    def __init__(self, name: str, help_text: str, typ: str) -> None:
        self.name = name
        self.help = help_text
        self.type = typ
        self.samples: dict[_Key, float] = {}
        self.series: dict[tuple[tuple[str, str], ...], _Series] = {}

    def add_histogram(self, key: _Key, value: float) -> None:
        series = self.series.get(key.labels)
        if series is None:
            series = self.series[key.labels] = _Series(self.name, key.labelstr)
        if key.le is not None:
            series.buckets[key] = series.buckets.get(key, 0.0) + value
        elif key.sample.endswith("_sum"):
            series.sum += value
        elif not key.sample.endswith("_count"):  # the count is the +Inf bucket's
            self.samples[key] = self.samples.get(key, 0.0) + value

    def _lines(self) -> Iterator[tuple[str, float]]:
        """(the line's start, value) of every sample; buckets cumulative, then count, sum."""
        yield from ((key.line, value) for key, value in self.samples.items())
        for series in self.series.values():
            acc = 0.0
            for key, value in sorted(series.buckets.items(), key=_by_le):
                acc += value
                yield key.line, acc
            if series.buckets:
                yield series.count_line, acc
            yield series.sum_line, series.sum

    def render(self, out: list[str]) -> None:
        """Append this family's Prometheus text lines to ``out``."""
        name = f"{self.name}_total" if self.type == "counter" else self.name
        help_text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {self.type}\n")
        out.extend([f"{line}{_go_float(value)}\n" for line, value in self._lines()])

    def to_metric(self) -> Any:
        """This family as a prometheus-client ``Metric``."""
        metric = PromMetric(self.name, self.help, self.type)
        for key, value in self.samples.items():
            metric.add_sample(key.sample, dict(key.labels), value)
        for labels, series in self.series.items():
            acc = 0.0
            for key, value in sorted(series.buckets.items(), key=_by_le):
                acc += value
                le = {"le": _go_float(key.le or 0.0)}
                metric.add_sample(f"{self.name}_bucket", {**dict(labels), **le}, acc)
            if series.buckets:
                metric.add_sample(f"{self.name}_count", dict(labels), acc)
            metric.add_sample(f"{self.name}_sum", dict(labels), series.sum)
        return metric


def _by_le(item: tuple[_Key, float]) -> float:
    return item[0].le or 0.0


def _go_float(value: float) -> str:
    """prometheus-client's floatToGoString, with the common case (below 1e6) inline."""
    if -math.inf < value < 1e6:
        return repr(value)
    return str(floatToGoString(value))


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
