"""A bounded batch span processor: the only thing between the request path and an exporter.

- ``on_end`` appends to a bounded deque under a short lock and returns: a down or slow backend
  never blocks a request and never grows memory past ``max_queue_size`` spans or
  ``max_queue_bytes`` (an estimate per span from its attribute, event and link counts and string
  lengths, taken when it ends, no serialisation; the batch being exported counts until its
  export returns, so a hung export holds no more than the bound either).
- The request spans of ``tracing/_span.py`` arrive through ``on_end_packed`` as tuples the
  garbage collector untracks (``tracing/_packed.py``); the worker rebuilds each into an SDK
  ``ReadableSpan`` just before the export call.
- Every span that does not reach the exporter is counted exactly in
  ``telemetry_spans_dropped_total{exporter, reason}``: ``queue_full`` (the queue was full, by
  count or by bytes), ``export_failed`` (the exporter reported failure or raised), ``shutdown``
  (still queued or in flight when the shutdown budget ran out, or ended after shutdown).
- A failing exporter is retried after a growing pause (1 s doubling to 30 s), and reported
  once per report period (30 s) with the cause, e.g. ``Trace export failed: connection refused
  to http://collector:4318/v1/traces``; the exporter's own per-attempt log lines are absorbed.
- Fork-safe: a child process starts with an empty queue, fresh locks, a new exporter (when the
  processor was given a factory, so no HTTP connection is shared with the parent) and starts
  its thread on its first span.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import mypyc_attr
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._forksafe import register_at_fork
from ._packed import PackedSpan, unpack

__all__ = ["BoundedBatchProcessor"]

_log: Final = logging.getLogger("telemetry_web.tracing")

ExporterFactory = Callable[[], SpanExporter]

# What a queued request span costs on the heap, measured with tracemalloc (about 1.3 KB for the
# server span of a GET with a dozen attributes): the ReadableSpan, its context, status and
# attribute dict, plus per attribute a dict slot and its value, plus the text of string values
# (attribute keys are shared constants). Events and links are counted the same way.
_SPAN_BYTES: Final = 600
_ITEM_BYTES: Final = 64
_EVENT_BYTES: Final = 200


def _attributes_bytes(attributes: Any) -> int:
    if not attributes:
        return 0
    size = _ITEM_BYTES * len(attributes)
    for value in attributes.values():
        if type(value) is str:
            size += len(value)
        elif type(value) is tuple:
            size += 16 * len(value) + sum(len(v) for v in value if type(v) is str)
    return size


def estimate_span_bytes(span: ReadableSpan) -> int:
    """A cheap estimate of the memory a finished span holds while it waits for export."""
    return span_bytes(
        getattr(span, "_attributes", None),
        getattr(span, "_events", None),
        getattr(span, "_links", None),
    )


def span_bytes(attributes: Any, events: Any, links: Any) -> int:
    """:func:`estimate_span_bytes` from a span's attributes, events and links."""
    size = _SPAN_BYTES + _attributes_bytes(attributes)
    for event in events or ():
        size += _EVENT_BYTES + len(event.name) + _attributes_bytes(event.attributes)
    for link in links or ():
        size += _EVENT_BYTES + _attributes_bytes(link.attributes)
    return size


class _Absorb(logging.Filter):
    """Keeps the records an exporter logs on our worker thread, instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        sink = getattr(self.local, "records", None)
        if sink is None:
            return True
        sink.append(record)
        return False


_ABSORB = _Absorb()


# Libraries an exporter calls that log each failed attempt on the export thread themselves.
_TRANSPORT_LOGGERS = {"grpc": ("grpc._common", "grpc._channel")}


def _absorb_logs_of(exporter: SpanExporter) -> None:
    # A logger's filters see only the records logged on it (not its children's): name each
    # module the exporter's classes come from (the gRPC exporter logs from its mixin's module).
    names: set[str] = set()
    for cls in type(exporter).__mro__:
        module = cls.__module__
        if module.startswith(("builtins", "abc", "typing", "opentelemetry.sdk.")):
            continue
        names.update((module, module.rpartition(".")[0] + "._common"))
        for marker, loggers in _TRANSPORT_LOGGERS.items():
            if f".{marker}" in module or module.startswith(marker):
                names.update(loggers)
    for name in names:
        logger = logging.getLogger(name)
        if _ABSORB not in logger.filters:
            logger.addFilter(_ABSORB)


def _endpoint(exporter: SpanExporter) -> str | None:
    for attribute in ("_endpoint", "endpoint", "url"):
        value = getattr(exporter, attribute, None)
        if isinstance(value, str):
            return value
    describe = getattr(exporter, "describe_endpoint", None)
    return describe() if callable(describe) else None


def describe_failure(
    exporter: SpanExporter, records: list[logging.LogRecord], error: BaseException | None
) -> str:
    """One line saying why an export failed: ``connection refused to <endpoint>`` and the like."""
    endpoint = _endpoint(exporter) or type(exporter).__name__
    texts: list[str] = []
    errors: list[BaseException] = []
    if error is not None:
        errors.append(error)
    for record in records:
        texts.append(record.getMessage())
        # Typed a tuple, but a record made with exc_info=True by hand carries True.
        exc_info: Any = getattr(record, "exc_info", None)
        if isinstance(exc_info, tuple) and exc_info[1] is not None:
            errors.append(exc_info[1])
    for exc in errors:
        seen = 0
        current: BaseException | None = exc
        while current is not None and seen < 10:
            if isinstance(current, ConnectionRefusedError):
                return f"connection refused to {endpoint}"
            if isinstance(current, TimeoutError):
                return f"timed out sending to {endpoint}"
            texts.append(f"{type(current).__name__}: {current}")
            current = current.__cause__ or current.__context__
            seen += 1
    joined = " ".join(texts)
    lowered = joined.lower()
    if "connection refused" in lowered or "errno 111" in lowered:
        return f"connection refused to {endpoint}"
    if "timed out" in lowered or "timeout" in lowered:
        return f"timed out sending to {endpoint}"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return f"cannot resolve the host of {endpoint}"
    detail = texts[0] if texts else "the exporter reported failure"
    return f"{detail} ({endpoint})"


# Not a native class when compiled (scripts/compile.py): its fork hook holds it weakly.
@mypyc_attr(native_class=False)
class BoundedBatchProcessor(SpanProcessor):
    """Batches sampled spans to one exporter through a bounded queue drained by a thread.

    Args:
        exporter: the exporter, or a factory building one (called again in a forked child).
        name: the ``exporter`` label of ``telemetry_spans_dropped_total``.
        dropped: that counter (``labels(exporter, reason).inc(n)``).
    """

    REPORT_PERIOD = 30.0
    MAX_BACKOFF = 30.0

    def __init__(
        self,
        exporter: SpanExporter | ExporterFactory,
        name: str,
        dropped: Any,
        *,
        max_queue_size: int = 2048,
        max_queue_bytes: int = 4 * 1024 * 1024,
        max_export_batch_size: int = 512,
        schedule_delay: float = 1.0,
        report_period: float | None = None,
    ) -> None:
        self._factory: ExporterFactory | None = None
        if isinstance(exporter, SpanExporter):
            self.exporter = exporter
        else:
            self._factory = exporter
            self.exporter = exporter()
        _absorb_logs_of(self.exporter)
        self.name = name
        self._dropped = {
            reason: dropped.labels(name, reason)
            for reason in ("queue_full", "export_failed", "shutdown")
        }
        self.max_queue_size = max_queue_size
        self.max_queue_bytes = max_queue_bytes
        self.batch_size = min(max_export_batch_size, max_queue_size)
        self.schedule_delay = schedule_delay
        self.report_period = self.REPORT_PERIOD if report_period is None else report_period
        self._reset_state()
        register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._after_fork_in_child,
        )

    def _reset_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # Spans, or request spans packed (tracing/_packed.py) until the worker exports them.
        self._queue: collections.deque[ReadableSpan | PackedSpan] = collections.deque()
        self._sizes: collections.deque[int] = collections.deque()  # estimate of each queued span
        self._bytes = 0  # estimated bytes held: queued spans and the batch being exported
        self._in_flight = 0  # spans of the batch being exported
        self._abandoned = False  # shutdown counted the batch in flight: its result is ignored
        self._accepted = 0  # spans queued so far
        self._settled = 0  # of those: exported, failed or abandoned
        self._flush_wanted = False
        self._stopping = False
        self._shutting_down = False
        self._stopped = False
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()
        self._backoff = 0.0
        self._failures_unreported = 0
        self._spans_failed_unreported = 0
        self._last_report = float("-inf")

    # --- the request path ---------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        self._enqueue(span, estimate_span_bytes(span))

    def on_end_packed(self, packed: PackedSpan, size: int) -> None:
        """``on_end`` for a request span the factory packed (``size``: its estimate)."""
        if packed[3] & 1:  # sampled
            self._enqueue(packed, size)

    def _enqueue(self, span: ReadableSpan | PackedSpan, size: int) -> None:
        if self._pid != os.getpid():  # forked without the hooks (os.fork in C code)
            self._after_fork_in_child()
        with self._lock:
            if self._stopped:
                self._dropped["shutdown"].inc()
                return
            if len(self._queue) >= self.max_queue_size or self._bytes + size > self.max_queue_bytes:
                full = True
            else:
                full = False
                self._queue.append(span)
                self._sizes.append(size)
                self._bytes += size
                self._accepted += 1
                if len(self._queue) >= self.batch_size:
                    self._wake.notify_all()
            if self._worker is None:
                self._start_thread()
        if full:
            self._dropped["queue_full"].inc()

    # --- the worker ---------------------------------------------------------------------------

    def _start_thread(self) -> None:
        self._worker = threading.Thread(
            target=self._run, name=f"telemetry-web-spans-{self.name}", daemon=True
        )
        self._worker.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                deadline = time.monotonic() + max(self.schedule_delay, self._backoff)
                while not (self._stopping or self._flush_wanted):
                    if len(self._queue) >= self.batch_size and self._backoff == 0.0:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                if self._stopped:
                    return
                count = min(len(self._queue), self.batch_size)
                queued = [self._queue.popleft() for _ in range(count)]
                batch_bytes = sum(self._sizes.popleft() for _ in range(count))
                self._in_flight = count
                if not self._queue:
                    self._flush_wanted = False
            if queued:
                success = self._export(queued)
                with self._lock:
                    self._bytes -= batch_bytes
                    self._in_flight = 0
                    if self._abandoned:  # counted as `shutdown` when the budget ran out
                        self._abandoned = False
                    else:
                        if not success:
                            self._dropped["export_failed"].inc(len(queued))
                        self._settled += len(queued)
                    self._wake.notify_all()

    def _export(self, queued: list[ReadableSpan | PackedSpan]) -> bool:
        records: list[logging.LogRecord] = []
        _ABSORB.local.records = records
        error: BaseException | None = None
        try:
            batch = [s if isinstance(s, ReadableSpan) else unpack(s) for s in queued]
            with suppress_instrumentation():  # the exporter's own HTTP calls are not the app's
                result = self.exporter.export(batch)
        except Exception as exc:  # an exporter bug must not kill the worker
            error, result = exc, SpanExportResult.FAILURE
        finally:
            _ABSORB.local.records = None
        if result is SpanExportResult.SUCCESS:
            self._backoff = 0.0
            return True
        self._backoff = min(self.MAX_BACKOFF, max(1.0, self._backoff * 2))
        self._failures_unreported += 1
        self._spans_failed_unreported += len(queued)
        now = time.monotonic()
        if now - self._last_report >= self.report_period:
            _log.warning(
                "Trace export failed: %s (exporter %s; %d spans in %d batches dropped since the "
                "last report; next report in %ds at the earliest)",
                describe_failure(self.exporter, records, error),
                self.name,
                self._spans_failed_unreported,
                self._failures_unreported,
                self.report_period,
            )
            self._last_report = now
            self._failures_unreported = 0
            self._spans_failed_unreported = 0
        return False

    # --- flush and shutdown -------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export everything queued so far; False when ``timeout_millis`` ran out first."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            target = self._accepted
            if self._settled >= target:
                return True
            if self._worker is None:
                self._start_thread()
            self._flush_wanted = True
            self._backoff = 0.0  # one more attempt, now
            self._wake.notify_all()
            while self._settled < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush within ``timeout`` seconds, count what is left as dropped, stop the exporter.

        What is still queued at the deadline, and the batch still being exported (a hung
        backend), is counted as dropped with reason ``shutdown``; the export in flight is left
        to its own timeout on the (daemon) worker thread and its result ignored.
        """
        with self._lock:
            if self._stopped or self._stopping or self._shutting_down:
                return
            self._shutting_down = True  # a second caller (the SDK provider's) returns at once
        self.force_flush(int(timeout * 1000))
        with self._lock:
            self._stopping = True
            self._stopped = True
            left = len(self._queue)
            self._queue.clear()
            self._bytes -= sum(self._sizes)
            self._sizes.clear()
            if self._in_flight:
                left += self._in_flight
                self._abandoned = True
            self._settled = self._accepted
            self._wake.notify_all()
        if left:
            self._dropped["shutdown"].inc(left)
        try:
            self.exporter.shutdown()
        except Exception:
            _log.debug("span exporter %s failed to shut down", self.name, exc_info=True)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """The estimated bytes held: queued spans and the batch being exported."""
        return self._bytes

    # --- fork ---------------------------------------------------------------------------------

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The parent exports what it had queued; the child starts empty, with its own thread
        # (started on the first span) and, when we can build one, its own exporter.
        stopped = self._stopped
        self._reset_state()
        self._stopped = stopped
        if self._factory is not None and not stopped:
            try:
                self.exporter = self._factory()
            except Exception:
                _log.warning("could not re-create span exporter %s after fork", self.name)
