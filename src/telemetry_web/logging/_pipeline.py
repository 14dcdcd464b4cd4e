"""The bounded queue between callers and sinks, and the writer thread that drains it.

Callers pay for building a dict (a tuple for the request line, see ``_request_line``), a size
estimate from its fields and one deque append; when the queue is full (``queue_size`` events, or
``queue_bytes`` of estimated size) the event is dropped and counted in
``telemetry_log_events_dropped_total{sink="queue",reason="queue_full"}``. The writer thread
applies the processors (redaction included) and hands each batch to every sink.
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .._forksafe import ForkLock
from ._processors import Processor, finish_event
from ._request_line import RequestLines, RequestRecord, request_event
from ._sinks import EventBatch, LogSink

__all__ = ["LogPipeline"]

_BATCH: Final = 512
_INTERVAL = 0.05  # seconds between two deliveries: the most a line waits when traffic is light
_ERROR_EVERY = 30.0  # seconds between two reports of the same failing sink
# What a queued event costs on the heap (measured with tracemalloc: about 760 bytes for a
# request line of 12 fields): the dict and its entries (keys are mostly shared constants), the
# text of string values; nested values (an exception, a bound dict) a flat guess.
EVENT_BYTES = _EVENT_BYTES = 250
FIELD_BYTES = _FIELD_BYTES = 36
_NESTED_BYTES = 512


def estimate_event_bytes(event: dict[str, Any]) -> int:
    """A cheap estimate of the memory a queued event holds (no serialisation)."""
    size = _EVENT_BYTES + _FIELD_BYTES * len(event)
    for value in event.values():
        kind = type(value)
        if kind is str:
            size += len(value)
        elif kind is dict or kind is list or kind is tuple:
            size += _NESTED_BYTES
    return size


# A plain class when compiled (scripts/compile.py): tests replace its methods on an
# instance to observe it.
@mypyc_attr(native_class=False)
class LogPipeline:
    """A bounded deque, appended to by callers, drained by one writer thread.

    The writer is not woken per event (a thread switch per request costs more than the event):
    it delivers every ``_INTERVAL`` seconds, or as soon as a batch is waiting.
    """

    def __init__(
        self,
        *,
        sinks: Sequence[LogSink],
        processors: Sequence[Processor],
        static_fields: dict[str, Any],
        max_queue: int,
        dropped: Any,
        max_queue_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.sinks = list(sinks)
        self._processors = list(processors)
        self._static = static_fields
        # What the static fields add to an event's estimate_event_bytes().
        self.static_bytes = estimate_event_bytes(static_fields) - _EVENT_BYTES
        # The request line's fast path, when the configuration allows it (see _request_line).
        self._request_lines = RequestLines.for_pipeline(self._processors, static_fields)
        self._max_queue = max_queue
        self._max_bytes = max_queue_bytes
        self._dropped = dropped
        self._queue_full = dropped.labels("queue", "queue_full")
        self._last_error: dict[str, float] = {}
        self._stopped = False
        # Held while delivering, and taken before fork(): a worker forked from a process
        # whose writer was mid-write (holding a stream's lock) would deadlock on its first line.
        # A forked worker inherits the queue but not the thread: it starts afresh in the child.
        self._delivering = ForkLock(after_in_child=self._after_fork)
        self._start()

    def _after_fork(self) -> None:
        if not self._stopped:
            self._start()

    def _start(self) -> None:
        # The events (dicts, or the request records of submit_request), and beside them
        # (appended first, under the size lock) each one's estimated bytes, negative for a
        # record. No tuple pairing the two: a queued event allocated beyond the free lists adds
        # to the garbage collector's count until it is delivered.
        self._queue: deque[Any] = deque()
        self._sizes: deque[int] = deque()
        # Estimated bytes submitted (callers, under the lock) and taken by the writer (its
        # thread only): their difference is what the queue holds.
        self._bytes_in = 0
        self._bytes_out = 0
        self._size_lock = threading.Lock()
        self._wake = threading.Event()
        self._delivered = threading.Condition()
        self._generation = 0  # batches delivered so far; flush() waits for it to move
        self._worker = threading.Thread(target=self._run, name="telemetry-logs", daemon=True)
        self._worker.start()

    # --- caller side --------------------------------------------------------------------------

    @property
    def static_fields(self) -> dict[str, Any]:
        """The fields every event carries after its standard keys (service, environment)."""
        return self._static

    def submit_request(self, record: RequestRecord, estimate: int) -> None:
        """Queue the lifecycle's request line as a record (``_request_line``): its fields in
        their final order, flat values, an epoch timestamp; ``estimate``: the bytes
        :func:`estimate_event_bytes` counts for its event."""
        self._put(record, max(estimate, 1), True)

    def submit(self, event: dict[str, Any], estimate: int | None = None) -> None:
        """Queue ``event``; ``estimate`` is its :func:`estimate_event_bytes`, when the caller
        knows it already."""
        self._put(event, estimate, False)

    def _put(self, item: Any, estimate: int | None, record: bool) -> None:
        """Queue an event, or a request record (its size kept negative beside it)."""
        queue = self._queue
        length = len(queue)
        if length >= self._max_queue or self._stopped:
            self._queue_full.inc()
            return
        if estimate is None:
            estimate = estimate_event_bytes(item)
        with self._size_lock:
            if self._bytes_in + estimate - self._bytes_out > self._max_bytes:
                full = True
            else:
                full = False
                self._bytes_in += estimate
                self._sizes.append(-estimate if record else estimate)
                queue.append(item)
        if full:
            self._queue_full.inc()
            return
        if length + 1 >= _BATCH and not self._wake.is_set():
            self._wake.set()

    @property
    def queued_bytes(self) -> int:
        """The estimated bytes of the events waiting for the writer thread."""
        return self._bytes_in - self._bytes_out

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything submitted so far has reached the sinks, and sinks that hold
        events (Elasticsearch's buffer) have delivered them."""
        if not self._worker.is_alive():
            return False
        deadline = time.monotonic() + timeout
        with self._delivered:
            target = self._generation + 2  # the round in progress may have started before us
            self._wake.set()
            while self._generation < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._delivered.wait(left)
                self._wake.set()
        delivered = True
        for sink in self.sinks:
            flush = getattr(sink, "flush", None)
            if flush is not None:
                try:
                    # A sink's flush may take the time left (ours do) or nothing (a file-like
                    # sink's); only an explicit False means "not everything delivered".
                    if _takes_timeout(flush):
                        done = flush(max(0.0, deadline - time.monotonic())) is not False
                    else:
                        done = flush() is not False
                except Exception as exc:  # a sink's failure is its own, never the caller's
                    self._report(getattr(sink, "name", type(sink).__name__), exc)
                    done = False
                delivered = done and delivered
        return delivered

    def shutdown(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, stop the writer and close the sinks, within ``timeout``;
        events still queued at the deadline (a sink blocking the writer) are counted as dropped
        with reason ``shutdown``."""
        if self._stopped:
            return
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stopped = True
        self._wake.set()
        self._worker.join(max(0.0, deadline - time.monotonic()))
        abandoned = 0
        queue = self._queue
        while True:  # popleft is atomic: an event is either the writer's or counted here
            try:
                queue.popleft()
            except IndexError:
                break
            abandoned += 1
        if abandoned:
            self._dropped.labels("queue", "shutdown").inc(abandoned)
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if close is None:
                continue
            if "timeout" in inspect.signature(close).parameters:  # ours: the budget left
                left = max(0.1, deadline - time.monotonic())
                self._guard(sink, functools.partial(close, timeout=left))
            else:
                self._guard(sink, close)

    # --- writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(_INTERVAL)
            self._wake.clear()
            while queue:
                count = min(len(queue), _BATCH)
                events = [queue.popleft() for _ in range(count)]
                sizes = [self._sizes.popleft() for _ in range(count)]
                self._bytes_out += sum(map(abs, sizes))
                with self._delivering:
                    self._deliver(events, sizes)
            with self._delivered:
                self._generation += 1
                self._delivered.notify_all()
            if self._stopped:
                return

    def _deliver(self, batch: list[Any], sizes: list[int]) -> None:
        finished = EventBatch()
        lines = self._request_lines
        for event, size in zip(batch, sizes, strict=True):
            try:
                if size < 0:  # a request record
                    if lines is not None:
                        stamp = lines.finish(event)
                        if stamp is not None:
                            finished.append_request(event, stamp, lines)
                            continue
                    event = request_event(event, self._static)
                result: dict[str, Any] | None = finish_event(event, self._static)
                for step in self._processors:
                    result = step(result)  # type: ignore[arg-type]
                    if result is None:
                        break
                if result is not None:
                    finished.append(result)
            except Exception as exc:  # one bad event (an unprintable value) loses only itself
                self._dropped.labels("pipeline", "processor_error").inc()
                self._report("pipeline", exc)
        if not finished:
            return
        for sink in self.sinks:
            if not self._guard(sink, sink.write, finished):
                self._dropped.labels(getattr(sink, "name", type(sink).__name__), "sink_error").inc(
                    len(finished)
                )

    def _guard(self, sink: Any, fn: Any, *args: Any) -> bool:
        try:
            fn(*args)
            return True
        except Exception as exc:
            self._report(getattr(sink, "name", type(sink).__name__), exc)
            return False

    def _report(self, where: str, exc: BaseException) -> None:
        # Straight to stderr: logging it would feed the failing pipeline again.
        now = time.monotonic()
        if now - self._last_error.get(where, -_ERROR_EVERY) >= _ERROR_EVERY:
            self._last_error[where] = now
            print(f"telemetry-web: Log shipping failed ({where}): {exc!r}", file=sys.stderr)


def _takes_timeout(method: Any) -> bool:
    """Whether a sink's ``flush`` takes the time left as an argument (ours) or none (a stream's);
    read once per function, not on every flush."""
    function = getattr(method, "__func__", None)
    if function is None:  # a builtin's bound method (a stream's flush): not cached
        return _takes_argument(method, 0)
    return _function_takes_timeout(function)


@functools.lru_cache(maxsize=64)
def _function_takes_timeout(function: Any) -> bool:
    return _takes_argument(function, 1)  # the unbound function: its first is the instance


def _takes_argument(function: Any, skipped: int) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())[skipped:]
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters
    )
