"""The RED metrics of HTTP requests, with label children cached per (method, route, status).

Two namings: the default (``http_requests_total``, ``http_request_duration_seconds`` …) and,
with ``metrics.naming: otel``, the stable OpenTelemetry HTTP conventions as Prometheus translates
them (``http_server_request_duration_seconds{http_request_method,http_route,
http_response_status_code}``), so dashboards built for OpenTelemetry contrib work unchanged.

A request is recorded into a slot per (method, route, status) (``_slots.py``, compiled): one
lock taken, a bucket index found by bisection, a few integers and a float added, the latest
exemplar per bucket kept as a tuple; requests in progress are counted in plain integers. Both
are folded into prometheus-client's children right before the registry is collected
(``/metrics``, pushes, the store, tests: every reader goes through ``collect``), so exposition
is prometheus-client's own and totals are exact. prometheus-client's per-value locks, its
bucket loop and its per-request exemplar validation stay off the request path.

In multiprocess mode the values live in the workers' memory-mapped files, which the scraping
worker reads directly: there each request writes through to them at once (one bisection, no
loop), as prometheus-client would.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from prometheus_client.metrics import _validate_exemplar  # type: ignore[attr-defined]
from prometheus_client.samples import Exemplar

from .. import semconv as sc
from .._forksafe import register_at_fork
from ..config import MetricsSettings
from ._registry import MetricSet
from ._slots import InProgress, Slot, SlotTable

__all__ = ["HttpMetrics"]

# Past this many (method, route, status) children the cache stops growing; prometheus-client
# keeps its own children anyway, this only bounds our shortcut table.
_CACHE_LIMIT = 10_000
_time = time.time


def _values_are_shared() -> bool:
    """Whether prometheus-client keeps values in the multiprocess files (fixed at its import)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


class HttpMetrics:
    """Records one request's counters and histograms, and hands out in-progress gauge children."""

    def __init__(
        self, metrics: MetricSet, settings: MetricsSettings, *, exemplars: bool = True
    ) -> None:
        # prometheus-client drops exemplars in multiprocess mode: skip building them there.
        self.exemplars = exemplars
        buckets = settings.duration_buckets or sc.DURATION_BUCKETS
        self.otel_naming = settings.naming == "otel"
        if self.otel_naming:
            keys: tuple[str, ...] = (
                sc.OTEL_LABEL_METHOD,
                sc.OTEL_LABEL_ROUTE,
                sc.OTEL_LABEL_STATUS,
            )
            self._requests = None
            self._duration = _histogram(
                metrics,
                sc.OTEL_HTTP_SERVER_DURATION,
                "Duration of HTTP server requests.",
                keys,
                buckets,
            )
            self._in_progress = (
                metrics.builder("gauge", sc.OTEL_HTTP_SERVER_ACTIVE)
                .with_description("Number of active HTTP server requests.")
                .with_label_keys(sc.OTEL_LABEL_METHOD, sc.OTEL_LABEL_SCHEME)
                .with_multiprocess_mode("livesum")
                .register()
            )
            sizes = (sc.OTEL_HTTP_SERVER_REQUEST_SIZE, sc.OTEL_HTTP_SERVER_RESPONSE_SIZE)
            size_help = (
                "Size of HTTP server request bodies.",
                "Size of HTTP server response bodies.",
            )
        else:
            keys = (sc.LABEL_METHOD, sc.LABEL_ROUTE, sc.LABEL_STATUS)
            self._requests = (
                metrics.builder("counter", sc.HTTP_REQUESTS_TOTAL)
                .with_description("HTTP requests handled, by method, route template and status.")
                .with_label_keys(*keys)
                .register()
            )
            self._duration = _histogram(
                metrics, sc.HTTP_REQUEST_DURATION,
                "Time from receiving an HTTP request to sending the last byte of its response.",
                keys, buckets,
            )  # fmt: skip
            self._in_progress = (
                metrics.builder("gauge", sc.HTTP_REQUESTS_IN_PROGRESS)
                .with_description("HTTP requests being handled now.")
                .with_label_keys(sc.LABEL_METHOD, sc.LABEL_ROUTE)
                .with_multiprocess_mode("livesum")
                .register()
            )
            sizes = (sc.HTTP_REQUEST_SIZE, sc.HTTP_RESPONSE_SIZE)
            size_help = ("Size of HTTP request bodies.", "Size of HTTP response bodies.")
        # Opt-in (metrics.size_histograms): 18 samples per (method, route, status) that most
        # dashboards never read, and half the /metrics body under several workers.
        self.size_histograms = settings.size_histograms
        self._request_size: Any = None
        self._response_size: Any = None
        if self.size_histograms:
            self._request_size, self._response_size = (
                _histogram(metrics, name, text, keys, sc.SIZE_BUCKETS)
                for name, text in zip(sizes, size_help, strict=True)
            )
        self._finished: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._bounds = tuple(float(b) for b in self._duration.raw._upper_bounds)
        self._size_bounds = (
            tuple(float(b) for b in self._request_size.raw._upper_bounds)
            if self.size_histograms
            else ()
        )
        # Values in the multiprocess files: write through (another worker may be scraping).
        self._shared = _values_are_shared()
        # The request path's part (compiled): the slots, and the in-progress counts.
        self.table = SlotTable(self._bounds, self._size_bounds, exemplars, self.otel_naming)
        self._fold_lock = threading.Lock()  # one fold at a time, so each sees the last one's
        self._gauges: dict[tuple[str, str], Any] = {}  # multiprocess: the gauge children's values
        if not self._shared:
            for metric in (self._requests, self._duration, self._request_size, self._response_size):
                if metric is not None:
                    metric.raw.before_collect = self.fold
            self._in_progress.raw.before_collect = self._fold_in_progress
        register_at_fork(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        # The slots were copied with the registry they fold into; only the locks are new.
        self.table.lock = threading.Lock()
        self._fold_lock = threading.Lock()

    @property
    def request_table(self) -> SlotTable | None:
        """The table a request may go straight to (:meth:`SlotTable.started`, and
        :meth:`SlotTable.record`, then :meth:`record` when it has no slot yet); None in
        multiprocess mode and for a subclass that records differently."""
        if self._shared or type(self).record is not HttpMetrics.record:
            return None
        return self.table

    def in_progress(self, method: str, route: str, scheme: str) -> Any:
        """The gauge child to ``inc()`` now and ``dec()`` when the request ends."""
        second = scheme if self.otel_naming else route
        return self._in_progress.labels(method, second)

    def in_progress_value(self, method: str, route: str, scheme: str) -> Any:
        """The in-progress gauge child's count: ``inc(1)`` now, ``inc(-1)`` when the request
        ends. Outside multiprocess mode, an :class:`InProgress` copied into the child before
        each collection; in it, the child's shared value (what the gauge's own ``inc``/``dec``
        do, without their checks)."""
        key = (method, scheme if self.otel_naming else route)
        if not self._shared:
            cells = self.table.in_progress
            cell = cells.get(key)
            if cell is None:
                if len(cells) >= _CACHE_LIMIT:  # past the table's limit: the child itself
                    return _GaugeCalls(self._in_progress.labels(*key))
                cell = cells.setdefault(key, InProgress(self._in_progress.labels(*key)))
            return cell
        value = self._gauges.get(key)
        if value is None:
            child = self._in_progress.labels(*key)
            value = getattr(child, "_value", None)
            if value is None:  # not prometheus-client's layout: its public methods
                value = _GaugeCalls(child)
            if len(self._gauges) < _CACHE_LIMIT:
                self._gauges[key] = value
        return value

    def _fold_in_progress(self) -> None:
        for cell in list(self.table.in_progress.values()):
            cell.child.set(cell.count)

    def record(
        self,
        method: str,
        route: str,
        status: int,
        duration: float,
        request_size: int,
        response_size: int,
        exemplar: Mapping[str, str] | None,
    ) -> None:
        table = self.table
        if not self._shared and table.record(
            method, route, status, duration, request_size, response_size, exemplar
        ):
            return
        key = (method, route, status)
        slot = table.slots.get(key)
        if slot is None:
            slot = self._slot(key)
            if slot is None:  # past the table's limit: straight to prometheus-client
                self._record_directly(key, duration, request_size, response_size, exemplar)
                return
        if self._shared:
            index = bisect_left(self._bounds, duration)
            self._write_through(slot, index, duration, request_size, response_size)
            return
        table.record(method, route, status, duration, request_size, response_size, exemplar)

    def _write_through(
        self, slot: Slot, index: int, duration: float, request_size: int, response_size: int
    ) -> None:
        """Straight into prometheus-client's values (the multiprocess files)."""
        requests, duration_hist, request_hist, response_hist = slot.children
        if requests is not None:
            requests._value.inc(1)
        duration_hist._sum.inc(duration)
        duration_hist._buckets[index].inc(1)
        if self.size_histograms:
            bounds = self._size_bounds
            request_hist._sum.inc(request_size)
            request_hist._buckets[bisect_left(bounds, request_size)].inc(1)
            response_hist._sum.inc(response_size)
            response_hist._buckets[bisect_left(bounds, response_size)].inc(1)

    def fold(self) -> None:
        """Add what the slots recorded since the last fold to prometheus-client's children."""
        table = self.table
        with self._fold_lock:
            with table.lock:
                dirty, table.dirty = table.dirty, []
                taken = []
                for slot in dirty:
                    slot.pending = False
                    taken.append(
                        (
                            slot.children,
                            slot.requests,
                            slot.sum,
                            slot.counts,
                            slot.exemplars,
                            slot.request_sum,
                            slot.request_counts,
                            slot.response_sum,
                            slot.response_counts,
                        )
                    )
                    buckets = len(slot.counts)
                    slot.requests = 0
                    slot.sum = 0.0
                    slot.counts = [0] * buckets
                    slot.exemplars = [None] * buckets
                    if self.size_histograms:
                        sizes = len(slot.request_counts)
                        slot.request_sum = slot.response_sum = 0.0
                        slot.request_counts = [0] * sizes
                        slot.response_counts = [0] * sizes
            for (
                children,
                requests,
                total,
                counts,
                exemplars,
                request_sum,
                request_counts,
                response_sum,
                response_counts,
            ) in taken:
                requests_child, duration_hist, request_hist, response_hist = children
                if requests_child is not None:
                    requests_child._value.inc(requests)
                _add(duration_hist, total, counts, exemplars)
                if self.size_histograms:
                    _add(request_hist, request_sum, request_counts, None)
                    _add(response_hist, response_sum, response_counts, None)

    def _slot(self, key: tuple[str, str, int]) -> Slot | None:
        table = self.table
        if len(table.slots) >= _CACHE_LIMIT:
            return None
        children = self._finished.get(key)
        if children is None:
            children = self._children(key)
        slot = Slot(children, len(self._bounds), len(self._size_bounds))
        with table.lock:
            return table.slots.setdefault(key, slot)

    def _record_directly(
        self,
        key: tuple[str, str, int],
        duration: float,
        request_size: int,
        response_size: int,
        exemplar: Mapping[str, str] | None,
    ) -> None:
        requests, duration_hist, request_size_hist, response_size_hist = self._children(key)
        if requests is not None:
            requests.inc()
        duration_hist.observe(duration, exemplar if self.exemplars else None)
        if self.size_histograms:
            request_size_hist.observe(request_size)
            response_size_hist.observe(response_size)

    def _children(self, key: tuple[str, str, int]) -> tuple[Any, Any, Any, Any]:
        values = (key[0], key[1], str(key[2]))
        children = (
            self._requests.labels(*values) if self._requests is not None else None,
            self._duration.labels(*values),
            self._request_size.labels(*values) if self._request_size is not None else _NOT_KEPT,
            self._response_size.labels(*values) if self._response_size is not None else _NOT_KEPT,
        )
        if len(self._finished) < _CACHE_LIMIT:
            self._finished[key] = children
        return children


def _add(
    histogram: Any,
    total: float,
    counts: list[int],
    exemplars: list[tuple[Mapping[str, str], float, float] | None] | None,
) -> None:
    histogram._sum.inc(total)
    buckets = histogram._buckets
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    if exemplars is not None:
        for index, exemplar in enumerate(exemplars):
            if exemplar is not None:
                try:  # checked here, once per bucket and scrape, instead of per request
                    _validate_exemplar(exemplar[0])  # type: ignore[no-untyped-call]
                except ValueError:
                    continue
                buckets[index].set_exemplar(Exemplar(dict(exemplar[0]), exemplar[1], exemplar[2]))


class _GaugeCalls:
    """``inc(amount)`` through a gauge child's public methods."""

    __slots__ = ("child",)

    def __init__(self, child: Any) -> None:
        self.child = child

    def inc(self, amount: float) -> None:
        self.child.inc(amount)


class _NotKept:
    """The body-size histogram children when ``metrics.size_histograms`` is off."""

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        pass


_NOT_KEPT = _NotKept()


def _histogram(
    metrics: MetricSet, name: str, help_text: str, keys: tuple[str, ...], buckets: Any
) -> Any:
    return (
        metrics.builder("histogram", name)
        .with_description(help_text)
        .with_label_keys(*keys)
        .with_buckets(buckets)
        .register()
    )
