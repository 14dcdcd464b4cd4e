"""What the sinks that ship events over the network share (Elasticsearch, OTLP): the bounded
buffer and the sender thread (:class:`ShippingSink`), ``Retry-After`` in seconds (the metric
outputs' too), one kept-alive HTTP connection, and the backoff and stderr reports.

The log writer thread only encodes events and appends them to a buffer bounded by events and
encoded bytes (the batch in flight, which is also the retry buffer, counts in both); past that,
new events are dropped as ``buffer_full``. The sender thread sends a batch when ``batch_size``
events are waiting or every ``flush_interval``; a failed attempt puts the events back in front
and waits a backoff period (doubled per failure, or the server's ``Retry-After``); events the
server refuses for good are dropped as ``rejected``, those left at close as ``shutdown``.

The reports (``telemetry-web: Log shipping failed: <sink> <what>; ...``) are printed at most
once per :data:`REPORT_EVERY` seconds each: the first failure at once, then one line per period
with the number of failed attempts since the last line, and one line when shipping recovers.
"""

from __future__ import annotations

import abc
import email.utils
import http.client
import socket
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from .._forksafe import register_at_fork

__all__ = ["REPORT_EVERY", "Backoff", "KeptAliveConnection", "Retry", "ShippingSink",
           "retry_after", "stderr"]  # fmt: skip

REPORT_EVERY = 30.0  # seconds between two lines of the same kind
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


def retry_after(value: str | None, limit: float = 300.0) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), at most ``limit``; None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), limit)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, min(when.timestamp() - time.time(), limit))


def stderr(line: str) -> None:
    # Straight to stderr: logging it would feed the failing pipeline again.
    print(line, file=sys.stderr, flush=True)


class Backoff:
    """The backoff and the reports of one sink's sender thread (used from that thread only).

    Args:
        sink: the sink's name, as the lines show it (``elasticsearch``, ``otlp``).
        where: the endpoint, without credentials.
        backoff: the first wait after a failure, doubled per failure up to ``max_backoff``.
        report: where the lines go.
    """

    def __init__(
        self,
        sink: str,
        where: str,
        *,
        backoff: float,
        max_backoff: float,
        report: Callable[[str], None] = stderr,
    ) -> None:
        self.sink = sink
        self.where = where
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.report = report
        self.failures = 0  # consecutive failed attempts
        self.retry_at = 0.0  # monotonic time before which no attempt is made
        self._unreported_failures = 0
        self._next_failure_report = 0.0
        self._unreported_drops = 0
        self._next_drop_report = 0.0

    def failed(self, what: str, waiting: int, retry_after: float | None = None) -> float:
        """An attempt failed (``waiting``: events buffered); returns the wait before the next.
        A server's ``retry_after`` lengthens the wait, up to ``max(max_backoff, 30 s)``."""
        delay = min(self.max_backoff, self.backoff * 2.0**self.failures)
        if retry_after is not None:
            delay = min(max(delay, retry_after), max(self.max_backoff, REPORT_EVERY))
        self.failures += 1
        self._unreported_failures += 1
        now = time.monotonic()
        self.retry_at = now + delay
        if now >= self._next_failure_report:
            self._next_failure_report = now + REPORT_EVERY
            attempts, self._unreported_failures = self._unreported_failures, 0
            since = f" ({attempts} failed attempts since the last report)" if attempts > 1 else ""
            self.report(
                f"telemetry-web: Log shipping failed: {self.sink} {what}; {waiting} events "
                f"buffered, next attempt in {delay:g}s{since}"
            )
        return delay

    def succeeded(self) -> None:
        """An attempt went through: the next one waits for nothing; says so after failures."""
        if self.failures:
            self.report(
                f"telemetry-web: Log shipping to {self.sink} {self.where} recovered after "
                f"{self.failures} failed attempts"
            )
        self.failures = 0
        self._unreported_failures = 0
        self._next_failure_report = 0.0
        self.retry_at = 0.0

    def try_now(self) -> None:
        """An explicit flush: the backoff period ends now."""
        self.retry_at = min(self.retry_at, time.monotonic())

    def dropped(self, count: int, what: str) -> None:
        """``count`` events will never be stored (the caller counts them in the metric); one
        line per period with the events dropped since the last one."""
        self._unreported_drops += count
        now = time.monotonic()
        if now >= self._next_drop_report:
            self._next_drop_report = now + REPORT_EVERY
            self.report(
                f"telemetry-web: Log shipping failed: {self.sink} {what}; "
                f"{self._unreported_drops} events dropped since the last report"
            )
            self._unreported_drops = 0

    def not_shipped(self, count: int) -> None:
        """The line for events left at shutdown."""
        self.report(
            f"telemetry-web: Log shipping failed: {self.sink} {self.where}: {count} events "
            "not shipped at shutdown"
        )


class KeptAliveConnection:
    """POSTs over one kept-alive ``http.client`` connection, made again when it broke; a
    connection the server closed while idle is retried once, afresh.

    Connection errors and timeouts propagate (``OSError``, ``http.client.HTTPException``).
    """

    def __init__(self, url: str, *, timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def post(
        self, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, http.client.HTTPResponse, bytes]:
        """``(status, response, payload)`` of one POST."""
        while True:
            reused = self._conn is not None
            try:
                conn = self._conn
                if conn is None:
                    cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
                    conn = self._conn = cls(self.host, self.port, timeout=self.timeout)
                conn.request("POST", path, body=body, headers=dict(headers))
                response = conn.getresponse()
                return response.status, response, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and isinstance(exc, _STALE_CONNECTION):
                    continue
                raise

    def abort(self) -> None:
        """Shut the socket of a request in progress, so it fails now rather than at its
        timeout (another thread may be blocked in :meth:`post`)."""
        sock = getattr(self._conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None


class Retry(Exception):
    """An attempt another one may fix (``retry_after``: the server's word, in seconds)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Sender(Protocol):
    def abort(self) -> None: ...
    def close(self) -> None: ...


#: One buffered event: what the sink sends, and its encoded size in bytes.
Item = tuple[Any, int]


class ShippingSink(abc.ABC):
    """The buffer and the sender thread of a network sink; see the module docstring.

    A subclass sets :attr:`name` and :attr:`thread_name`, encodes events (:meth:`_encode`),
    opens its connection (:meth:`_connect`, again in a forked child) and sends one batch
    (:meth:`_send`), then calls this ``__init__`` last.
    """

    name: ClassVar[str]
    thread_name: ClassVar[str]

    def __init__(
        self,
        where: str,
        *,
        dropped: Any,
        batch_size: int,
        flush_interval: float,
        max_buffer: int,
        max_buffer_bytes: int,
        backoff: float,
        max_backoff: float,
        report: Callable[[str], None] | None,
    ) -> None:
        self.where = where
        self._batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.max_buffer_bytes = max_buffer_bytes
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._dropped = dropped
        self._report = report or stderr
        self._stopped = False
        self._start()
        register_at_fork(after_in_child=self._after_fork_in_child)

    @abc.abstractmethod
    def _encode(self, events: Sequence[dict[str, Any]]) -> list[Item]:
        """The buffered form of ``events`` (on the log writer thread)."""

    @abc.abstractmethod
    def _connect(self) -> _Sender:
        """The connection the sender thread sends on (``abort()``, ``close()``)."""

    @abc.abstractmethod
    def _send(self, batch: list[Item]) -> tuple[list[Item], int, str]:
        """Send one batch: ``(items to send again, events refused for good, why)``.

        Raises:
            Retry: the whole batch is to be sent again.
        """

    def _start(self) -> None:
        self._buffer: deque[Item] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # buffer emptied, batch sent or failed
        self._wake = threading.Event()
        self._in_flight = 0
        self._bytes = 0  # of the buffer and the batch in flight
        self._abandoned = False  # close() counted the batch in flight as dropped
        self._closing = False
        self._flush_now = False  # flush() asked for the partial batch to go now
        self._close_deadline = float("inf")
        self._backoff = Backoff(
            self.name, self.where, backoff=self.backoff, max_backoff=self.max_backoff,
            report=self._report,
        )  # fmt: skip
        self._sender = self._connect()  # the child's own connection or channel
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent ships what it had buffered; the child starts empty, on its own connection.
        if not self._stopped:
            self._start()

    # --- the log writer thread ----------------------------------------------------------------

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        if self._stopped:  # the log writer outlived close(): nothing will ship these
            self._dropped.labels(self.name, "shutdown").inc(len(events))
            return
        items = self._encode(events)
        with self._lock:
            room = self.max_buffer - len(self._buffer) - self._in_flight
            accepted = items if len(items) <= room else items[: max(0, room)]
            room_bytes = self.max_buffer_bytes - self._bytes
            size = 0
            for count, (_item, item_size) in enumerate(accepted):
                if size + item_size > room_bytes:
                    accepted = accepted[:count]
                    break
                size += item_size
            self._buffer.extend(accepted)
            self._bytes += size
            ready = len(self._buffer) >= self._batch_size
        if len(accepted) < len(items):
            self._dropped.labels(self.name, "buffer_full").inc(len(items) - len(accepted))
        if ready:
            self._wake.set()

    # --- the sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic() + self.flush_interval
        backoff = self._backoff
        while True:
            with self._lock:
                closing = self._closing
                waiting = len(self._buffer)
                if not waiting:
                    self._flush_now = False  # nothing to flush; the next event waits its turn
            now = time.monotonic()
            due = now >= next_tick or self._flush_now or backoff.failures > 0
            if closing or (
                waiting and now >= backoff.retry_at and (due or waiting >= self._batch_size)
            ):
                self._flush_now = False
                self._ship_all(final=closing, partial=closing or due)
                if closing:
                    return
            # Until the next interval, or the end of the backoff period; a full buffer (or a
            # flush) wakes it earlier, and the check above keeps a backoff period whole.
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.flush_interval
            until = backoff.retry_at if backoff.retry_at > now else next_tick
            self._wake.wait(max(0.0, until - now))
            self._wake.clear()

    def _ship_all(self, *, final: bool, partial: bool) -> None:
        """Send full batches, and the last partial one when ``partial``, until the buffer is
        empty or an attempt fails."""
        while True:
            with self._lock:
                if not self._buffer or (not partial and len(self._buffer) < self._batch_size):
                    self._changed.notify_all()
                    return
                count = min(len(self._buffer), self._batch_size)
                batch = [self._buffer.popleft() for _ in range(count)]
                self._in_flight = count
            try:
                retry, rejected, why = self._send(batch)
            except Retry as exc:
                if self._requeue(batch, batch):
                    self._backoff.failed(str(exc), self._waiting(), exc.retry_after)
                return
            if retry:
                self._reject(rejected, why)
                if self._requeue(retry, batch):
                    what = f"{len(retry)} of {len(batch)} events refused for now"
                    self._backoff.failed(what, self._waiting())
                return
            self._backoff.succeeded()
            with self._lock:
                self._in_flight = 0
                if not self._abandoned:
                    self._bytes -= sum(size for _item, size in batch)
                self._changed.notify_all()
            self._reject(rejected, why)
            if final and time.monotonic() >= self._close_deadline:
                return

    def _waiting(self) -> int:
        with self._lock:
            return len(self._buffer)

    def _requeue(self, items: list[Item], batch: list[Item]) -> bool:
        """Put ``items`` (of the ``batch`` sent) back in front; False when close() has counted
        the batch as dropped meanwhile."""
        with self._lock:
            self._in_flight = 0
            self._changed.notify_all()
            if self._abandoned:
                return False
            self._bytes -= sum(size for _item, size in batch)
            self._buffer.extendleft(reversed(items))
            self._bytes += sum(size for _item, size in items)
            return True

    def _reject(self, count: int, why: str) -> None:
        """Count events the server refused for good (none when close() has counted their
        batch already); one line per period."""
        with self._lock:
            if not count or self._abandoned:
                return
        self._dropped.labels(self.name, "rejected").inc(count)
        self._backoff.dropped(count, why)

    # --- flush and close ------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Ask for the buffer to be shipped now and wait (up to ``timeout``) until it is; False
        when events are still waiting (the backend is away: they stay buffered)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._backoff.try_now()  # an explicit flush tries now
            self._flush_now = True
        self._wake.set()
        with self._lock:
            while self._buffer or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._changed.wait(min(left, 0.1))
                self._wake.set()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """One last attempt to ship the buffer (within ``timeout``), then stop; what could not
        be shipped is counted as dropped with reason ``shutdown``."""
        if self._stopped:
            return
        self._stopped = True
        self._close_deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
        self._wake.set()
        # The last moments of the budget are for counting: the caller's deadline is ours.
        self._thread.join(max(0.0, timeout - min(0.1, timeout * 0.8)))
        with self._lock:
            left = len(self._buffer) + self._in_flight
            self._buffer.clear()
            self._abandoned = self._in_flight > 0
            self._bytes = 0
        if left:
            self._dropped.labels(self.name, "shutdown").inc(left)
        # A send blocked on a hung backend fails now instead of at its timeout, and no answer
        # can arrive for a batch counted as dropped.
        self._sender.abort()
        if left:
            self._backoff.not_shipped(left)
        self._sender.close()
