"""What the HTTP metrics do per request: add to a slot, count a request in and out of progress.

Compiled with the request path (scripts/compile.py). :class:`~telemetry_web.metrics._http.
HttpMetrics` owns the table: it creates the slots with their prometheus-client children, folds
them into those children before every collection, and keeps prometheus-client's own path for
multiprocess mode (where each request writes through to the shared files). Per request, here:
a finished request takes one dict lookup, a bisection and a few additions under one lock; a
request starting or ending adds to an in-progress count.

The in-progress counts are plain integers, copied into the gauge's children before every
collection. Adding to one is a native addition that runs without a point where CPython could
switch threads, so concurrent requests need no lock for it (as with the GIL's other atomic
operations; a free-threaded build would need one).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["InProgress", "Slot", "SlotTable"]

_time: Final = time.time


class Slot:
    """One (method, route, status): what it recorded since the last fold, and its children."""

    def __init__(self, children: tuple[Any, Any, Any, Any], buckets: int, sizes: int) -> None:
        self.children = children
        self.pending = False  # listed in SlotTable.dirty
        self.requests = 0
        self.sum = 0.0
        self.counts: list[int] = [0] * buckets
        # Per bucket: the latest (labels, value, timestamp), as prometheus-client keeps it.
        self.exemplars: list[tuple[Mapping[str, str], float, float] | None] = [None] * buckets
        self.request_sum = 0.0
        self.response_sum = 0.0
        self.request_counts: list[int] = [0] * sizes
        self.response_counts: list[int] = [0] * sizes


class InProgress:
    """The requests in progress of one gauge child: ``inc(1)`` when one starts, ``inc(-1)``
    when it ends; ``child`` gets the count before each collection."""

    def __init__(self, child: Any) -> None:
        self.child = child
        self.count = 0

    def inc(self, amount: int) -> None:
        self.count += amount


class SlotTable:
    """The slots and in-progress counts of one :class:`HttpMetrics` (see the module docstring).

    Args:
        bounds: the duration histogram's upper bounds (``+Inf`` last).
        size_bounds: the body-size histograms' upper bounds; empty when they are off.
        exemplars: keep the latest exemplar per bucket.
        otel_naming: the in-progress gauge is keyed by (method, scheme), not (method, route).
    """

    def __init__(
        self,
        bounds: tuple[float, ...],
        size_bounds: tuple[float, ...],
        exemplars: bool,
        otel_naming: bool,
    ) -> None:
        self.bounds = bounds
        self.size_bounds = size_bounds
        self.exemplars = exemplars
        self.otel_naming = otel_naming
        self.slots: dict[tuple[str, str, int], Slot] = {}
        self.dirty: list[Slot] = []  # slots holding values not folded yet
        self.lock: Any = threading.Lock()  # the slots' values and ``dirty``
        self.in_progress: dict[tuple[str, str], InProgress] = {}

    def record(
        self,
        method: str,
        route: str,
        status: int,
        duration: float,
        request_size: int,
        response_size: int,
        exemplar: Mapping[str, str] | None,
    ) -> bool:
        """Add one finished request to its slot; False when it has none yet (the caller
        creates it)."""
        slot = self.slots.get((method, route, status))
        if slot is None:
            return False
        index = bisect_left(self.bounds, duration)
        size_bounds = self.size_bounds
        request_index = response_index = 0
        if size_bounds:
            request_index = bisect_left(size_bounds, request_size)
            response_index = bisect_left(size_bounds, response_size)
        kept = (exemplar, duration, _time()) if exemplar and self.exemplars else None
        with self.lock:
            slot.requests += 1
            slot.sum += duration
            slot.counts[index] += 1
            if kept is not None:
                slot.exemplars[index] = kept
            if size_bounds:
                slot.request_sum += request_size
                slot.request_counts[request_index] += 1
                slot.response_sum += response_size
                slot.response_counts[response_index] += 1
            if not slot.pending:
                slot.pending = True
                self.dirty.append(slot)
        return True

    def started(self, method: str, route: str, scheme: str) -> InProgress | None:
        """Count a request in progress; its :class:`InProgress` (``inc(-1)`` when it ends), or
        None when that gauge child has none yet."""
        cell = self.in_progress.get((method, scheme if self.otel_naming else route))
        if cell is not None:
            cell.count += 1
        return cell
