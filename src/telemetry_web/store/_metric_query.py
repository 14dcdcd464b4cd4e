"""Reading the metric history: families with their latest value or rate, and per-interval
rates, error ratios and histogram quantiles (``telemetry metrics list`` / ``query``).

Counters are cumulative: the increase over a window is the sum of the differences between
consecutive points, a drop (a restarted process) counting from zero as in Prometheus; a series
with no point before a window counts from 0 (it was created in it). Quantiles interpolate
linearly inside the bucket that holds the rank, as Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import os
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import semconv as sc
from ._query import StoreError
from ._records import existing_store

__all__ = [
    "MetricFamily",
    "MetricHistory",
    "QueryRow",
    "SeriesWindow",
    "bucket_counts",
    "error_ratio",
    "histogram_quantile",
]

QUANTILES = (0.5, 0.95, 0.99)
_STATUS_LABELS = ("status", "http_response_status_code")
# The counter whose `status` gives the error ratio of a request-duration histogram.
_REQUEST_COUNTERS = {sc.HTTP_REQUEST_DURATION: sc.HTTP_REQUESTS_TOTAL}


@dataclass(frozen=True)
class MetricFamily:
    name: str
    type: str
    help: str
    series: int  # label sets (a histogram's buckets, sum and count of one set are one)
    value: float | None  # gauges: the latest value (summed over series); others: per second
    value_kind: str  # "latest" or "rate"
    latest: float  # epoch seconds of the latest snapshot that has the family

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__}


@dataclass(frozen=True)
class QueryRow:
    start: float  # epoch seconds; the interval is (start, end]
    end: float
    labels: dict[str, str]  # the --by labels
    rate: float | None = None  # counters and histograms: per second
    error_ratio: float | None = None  # histograms with a status: 5xx share of the requests
    quantiles: dict[str, float | None] = field(default_factory=dict)  # "p50": value
    value: float | None = None  # gauges: the latest value in the interval, summed

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"start": self.start, "end": self.end, "labels": self.labels}
        for key in ("rate", "error_ratio", "value"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        doc.update(self.quantiles)
        return doc


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: ``buckets`` are (upper bound, cumulative count)
    with a ``+Inf`` one; None without observations."""
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    ordered = sorted(buckets)
    counts = [c for _, c in ordered]
    for i in range(1, len(counts)):  # counts of separate series can disagree slightly
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    b = bisect.bisect_left(counts, rank)
    if b == len(ordered) - 1:  # the +Inf bucket: the highest finite bound
        return ordered[-2][0]
    if b == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start = 0.0 if b == 0 else ordered[b - 1][0]
    end = ordered[b][0]
    below = 0.0 if b == 0 else counts[b - 1]
    inside = counts[b] - below
    if inside <= 0:
        return end
    return start + (end - start) * (rank - below) / inside


def bucket_counts(parts: Iterable[tuple[dict[str, str], float]]) -> list[tuple[float, float]]:
    """(upper bound, count) of ``_bucket`` series given as (labels, increase), summed per
    ``le``: what :func:`histogram_quantile` takes."""
    per_bound: dict[float, float] = defaultdict(float)
    for labels, increase in parts:
        if "le" in labels:
            per_bound[float(labels["le"])] += increase
    return sorted(per_bound.items())


def error_ratio(
    parts: Iterable[tuple[dict[str, str], float]], status_label: str | None = None
) -> float | None:
    """The 5xx share of request counts given as (labels, increase): None without a status
    label or without requests."""
    requests = failed = 0.0
    has_status = False
    keys = (status_label,) if status_label else _STATUS_LABELS
    for labels, increase in parts:
        requests += increase
        has_status = has_status or any(k in labels for k in keys)
        if _is_server_error(labels, keys):
            failed += increase
    return failed / requests if has_status and requests > 0 else None


@dataclass(frozen=True)
class SeriesWindow:
    """One series over a window: its labels, its (reset-aware) increase, and its latest value
    in the window (None when it has no point there)."""

    labels: dict[str, str]
    increase: float
    latest: float | None


class _Series:
    """One series' points, with counter resets folded into a running offset."""

    __slots__ = ("adjusted", "labels", "name", "times", "values")

    def __init__(self, name: str, labels: dict[str, str]) -> None:
        self.name, self.labels = name, labels
        self.times: list[int] = []
        self.values: list[float] = []
        self.adjusted: list[float] = []

    def add(self, ts: int, value: float) -> None:
        if self.values:
            previous = self.values[-1]
            offset = self.adjusted[-1] - previous
            if value < previous:  # reset: the new process counts from zero
                offset += previous
            self.adjusted.append(value + offset)
        else:
            self.adjusted.append(value)
        self.times.append(ts)
        self.values.append(value)

    def total_at(self, ts: int) -> float:
        """The reset-adjusted counter at ``ts`` (0 before the first point)."""
        i = bisect.bisect_right(self.times, ts)
        return self.adjusted[i - 1] if i else 0.0

    def latest_in(self, start: int, end: int) -> float | None:
        i = bisect.bisect_right(self.times, end)
        if i and self.times[i - 1] > start:
            return self.values[i - 1]
        return None


class MetricHistory:
    """Queries over the metric history of one store file (opened read-only).

    Raises:
        StoreError: (from the constructor) no store file, or no snapshot in it yet.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = existing_store(path)
        try:
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
            tables = {
                r[0]
                for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            empty = (
                "metric_snapshots" not in tables
                or not self._conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM metric_snapshots)"
                ).fetchone()[0]
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None
        if empty:
            self._conn.close()
            raise StoreError(
                f"the telemetry store at {self.path} has no metric history yet: a snapshot is "
                "taken every metrics.collectors.prometheus.scrape_interval (15s by default) "
                "while the app runs"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> MetricHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the telemetry store at {self.path}: {exc}") from None

    # --- snapshots --------------------------------------------------------------------------

    def latest(self) -> float:
        """Epoch seconds of the latest snapshot."""
        return float(self._query("SELECT MAX(ts) FROM metric_snapshots")[0][0]) / 1000

    def interval(self) -> float:
        """The usual time between two snapshots (the median of the latest gaps), in seconds."""
        rows = self._query("SELECT ts FROM metric_snapshots ORDER BY ts DESC LIMIT 50")
        gaps = sorted(a[0] - b[0] for a, b in itertools.pairwise(rows))
        return gaps[len(gaps) // 2] / 1000 if gaps else 15.0

    def snapshot_times(self, start: float, end: float) -> list[float]:
        rows = self._query(
            "SELECT ts FROM metric_snapshots WHERE ts > ? AND ts <= ? ORDER BY ts",
            (int(start * 1000), int(end * 1000)),
        )
        return [r[0] / 1000 for r in rows]

    def names(self) -> list[str]:
        return [r[0] for r in self._query("SELECT DISTINCT family FROM metric_series ORDER BY 1")]

    # --- reading series ---------------------------------------------------------------------

    def _series(
        self, sql_filter: str, params: Sequence[Any], start: float, end: float
    ) -> list[_Series]:
        """Series matching the filter, with the last point at or before ``start`` and every
        point in (start, end]."""
        rows = self._query(f"SELECT id, name, labels FROM metric_series WHERE {sql_filter}", params)
        lo, hi = int(start * 1000), int(end * 1000)
        found = []
        for series_id, name, labels in rows:
            series = _Series(name, json.loads(labels))
            base = self._query(
                "SELECT ts, value FROM metric_points WHERE series_id = ? AND ts <= ? "
                "ORDER BY ts DESC LIMIT 1",
                (series_id, lo),
            )
            for ts, value in base + self._query(
                "SELECT ts, value FROM metric_points WHERE series_id = ? AND ts > ? AND ts <= ? "
                "ORDER BY ts",
                (series_id, lo, hi),
            ):
                series.add(ts, value)
            found.append(series)
        return found

    def families(self, window: float = 60.0) -> list[MetricFamily]:
        """Every family: type, help, label sets, and its latest value (gauges) or its rate per
        second over the last ``window`` seconds (counters; histograms and summaries: of their
        observations)."""
        end = self.latest()
        start = end - window
        lo, hi = int(start * 1000), int(end * 1000)
        result = []
        meta = self._query(
            "SELECT family, MIN(type), MIN(help) FROM metric_series GROUP BY family ORDER BY 1"
        )
        for family, kind, help_text in meta:
            series = self._series("family = ?", (family,), start, end)
            label_sets = {
                frozenset((k, v) for k, v in s.labels.items() if k not in ("le", "quantile"))
                for s in series
            }
            latest = max((s.times[-1] for s in series if s.times), default=0)
            if kind == "gauge":
                values = [s.latest_in(lo - 1, hi) for s in series]
                present = [v for v in values if v is not None]
                value = sum(present) if present else None
                value_kind = "latest"
            else:
                counted = [s for s in series if _is_count(s.name, kind, family)]
                increase = sum(s.total_at(hi) - s.total_at(lo) for s in counted)
                value = increase / window if window > 0 else None
                value_kind = "rate"
            result.append(
                MetricFamily(
                    name=family, type=kind, help=help_text, series=len(label_sets), value=value,
                    value_kind=value_kind, latest=latest / 1000,
                )
            )  # fmt: skip
        return result

    def window(self, family: str, sample: str, start: float, end: float) -> list[SeriesWindow]:
        """Every series of ``sample`` (a counter's own name, a histogram's ``_bucket``...) in
        ``family`` over (start, end]: the numbers alert conditions are made of."""
        lo, hi = int(start * 1000), int(end * 1000)
        return [
            SeriesWindow(s.labels, s.total_at(hi) - s.total_at(lo), s.latest_in(lo, hi))
            for s in self._series("family = ? AND name = ?", (family, sample), start, end)
        ]

    def family_type(self, name: str) -> str | None:
        rows = self._query("SELECT MIN(type) FROM metric_series WHERE family = ?", (name,))
        return rows[0][0] if rows and rows[0][0] is not None else None

    def query(
        self,
        name: str,
        *,
        by: Sequence[str] = (),
        since: float = 3600.0,
        step: float | None = None,
        where: dict[str, str] | None = None,
        now: float,
    ) -> tuple[str, float, list[QueryRow]]:
        """Per interval of ``step`` seconds over the last ``since`` (the latest interval ending
        at the latest snapshot) and per group of ``by`` labels: a counter's rate, a gauge's
        latest value, or a histogram's rate, error ratio and p50/p95/p99.

        Returns:
            the family's type, the step used, and the rows (intervals with no snapshot left out).

        Raises:
            StoreError: no such family.
        """
        kind = self.family_type(name)
        if kind is None:
            raise StoreError(_unknown(name, self.names()))
        step = step or default_step(since, self.interval())
        end = min(self.latest(), now)
        start = now - since
        if end <= start:  # nothing snapshotted in the last `since`
            return kind, step, []
        count = max(1, math.ceil((end - start) / step - 1e-9))
        windows = [(end - (k + 1) * step, end - k * step) for k in reversed(range(count))]
        first = windows[0][0]
        series = [
            s for s in self._series("family = ?", (name,), first, end) if _matches(s.labels, where)
        ]
        errors: list[_Series] = []
        if kind == "histogram":
            errors = self._error_series(name, series, first, end, where)
        rows = []
        for w_start, w_end in windows:
            if not self.snapshot_times(w_start, w_end):
                continue
            lo, hi = int(w_start * 1000), int(w_end * 1000)
            groups: dict[tuple[str, ...], list[_Series]] = defaultdict(list)
            for s in series:
                groups[tuple(s.labels.get(k, "") for k in by)].append(s)
            for key in sorted(groups):
                labels = dict(zip(by, key, strict=True))
                members = groups[key]
                rows.append(
                    self._row(kind, name, labels, members, errors, by, key, lo, hi, w_start, w_end)
                )
        return kind, step, rows

    def _error_series(
        self,
        name: str,
        series: list[_Series],
        start: float,
        end: float,
        where: dict[str, str] | None,
    ) -> list[_Series]:
        """Where the error ratio comes from: ``http_requests_total`` for the request-duration
        histogram, else the histogram's own ``_count`` when it has a status label."""
        counter = _REQUEST_COUNTERS.get(name)
        if counter is not None:
            found = [
                s
                for s in self._series("family = ?", (counter,), start, end)
                if _matches(s.labels, where)
            ]
            if found:
                return found
        return [s for s in series if s.name == f"{name}_count"]

    def _row(
        self,
        kind: str,
        name: str,
        labels: dict[str, str],
        members: list[_Series],
        errors: list[_Series],
        by: Sequence[str],
        key: tuple[str, ...],
        lo: int,
        hi: int,
        w_start: float,
        w_end: float,
    ) -> QueryRow:
        seconds = w_end - w_start

        def increase(s: _Series) -> float:
            return s.total_at(hi) - s.total_at(lo)

        if kind == "gauge":
            present = [v for v in (s.latest_in(lo, hi) for s in members) if v is not None]
            return QueryRow(w_start, w_end, labels, value=sum(present) if present else None)
        counted = [s for s in members if _is_count(s.name, kind, name)]
        total = sum(increase(s) for s in counted)
        if kind != "histogram":
            return QueryRow(w_start, w_end, labels, rate=total / seconds)
        mine = [e for e in errors if tuple(e.labels.get(k, "") for k in by) == key]
        ratio = error_ratio((e.labels, increase(e)) for e in mine)
        buckets = bucket_counts((s.labels, increase(s)) for s in members
                                if s.name == f"{name}_bucket")  # fmt: skip
        quantiles = {f"p{round(q * 100)}": histogram_quantile(q, buckets) for q in QUANTILES}
        return QueryRow(
            w_start, w_end, labels, rate=total / seconds, error_ratio=ratio, quantiles=quantiles
        )


def _is_count(sample: str, kind: str, family: str) -> bool:
    """The series whose increase is the family's rate: a counter's own, a histogram's or
    summary's ``_count``."""
    if kind in ("histogram", "summary", "gaugehistogram"):
        return sample == f"{family}_count"
    return sample == family or kind not in ("counter",)


def _is_server_error(labels: dict[str, str], keys: Sequence[str] = _STATUS_LABELS) -> bool:
    for key in keys:
        value = labels.get(key, "")
        if value.isdigit():
            return int(value) >= 500
    return False


def _matches(labels: dict[str, str], where: dict[str, str] | None) -> bool:
    return not where or all(labels.get(k) == v for k, v in where.items())


def _unknown(name: str, known: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else " (telemetry metrics list shows them)"
    return f"no metric named {name} in the history{hint}"


_STEPS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def default_step(since: float, interval: float) -> float:
    """About 30 intervals over ``since``, a round number of seconds, never below the
    history's own interval."""
    wanted = max(since / 30, interval)
    for step in _STEPS:
        if step >= wanted:
            return float(step)
    return float(math.ceil(wanted / 86400) * 86400)
