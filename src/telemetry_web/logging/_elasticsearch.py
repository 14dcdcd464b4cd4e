"""The Elasticsearch sink: events shipped with the ``_bulk`` API from a background thread.

The log writer thread only renders and appends to a bounded buffer; a sender thread of its own
posts NDJSON bulk bodies (``{"index": {"_index": ...}}`` then the document, per event) when
``buffer_size`` events are waiting or every ``flush_interval``, with the standard library's
``http.client`` over one kept-alive connection.

Failures, and what becomes of the events:

- Connection errors, timeouts, HTTP 408/429/5xx, and items answered 429/5xx are retried: the
  events go back to the front of the buffer and the next attempt waits a backoff period that
  doubles from ``backoff`` up to ``max_backoff`` (or longer, when a 429/503 says
  ``Retry-After``). A failure prints one line on stderr, ``telemetry-web: Log shipping failed:
  ...``, then at most one every 30 s (with the number of failed attempts since the last line),
  and one line when shipping recovers.
- Other 4xx answers and items (a mapping conflict, a bad index name) will not get better:
  those events are dropped, counted with reason ``rejected``.
- While Elasticsearch is away the buffer fills up to ``max_buffer`` events or
  ``max_buffer_bytes`` bytes (the rendered bulk items; the batch being sent, which is also the
  retry buffer, counts in both); past that, new events are dropped, counted with reason
  ``buffer_full``. What is buffered is shipped when it comes back. Events still buffered, or
  still being sent, when the sink is closed are counted as ``shutdown`` (an answer arriving
  later for a batch so counted is ignored).

Index names come from ``index_pattern`` (``logs-%Y.%m.%d``) and each event's own timestamp. Each
document also carries ``@timestamp`` (the same value), the field Kibana and ECS expect.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from .._forksafe import register_at_fork
from ._sinks import json_lines

__all__ = ["ElasticsearchSink"]

_quote: Callable[[str], str] = json.encoder.encode_basestring

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_REPORT_EVERY = 30.0  # seconds between two reports of rejected events
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _Retry(Exception):
    """A bulk attempt failed in a way another attempt may fix (``retry_after``: what the
    server asked for, in seconds)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ElasticsearchSink:
    """Ships events to Elasticsearch's ``_bulk`` API; see the module docstring.

    Args:
        url: ``http[s]://[user:password@]host:port[/prefix]``.
        dropped: ``telemetry_log_events_dropped_total`` (``labels(sink, reason).inc(n)``).
        report: where the ``Log shipping failed`` lines go (stderr by default).
    """

    name = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        dropped: Any,
        index_pattern: str = "logs-%Y.%m.%d",
        buffer_size: int = 1000,
        flush_interval: float = 5.0,
        max_buffer: int = 10_000,
        max_buffer_bytes: int = 8 * 1024 * 1024,
        timeout: float = 10.0,
        api_key: str | None = None,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        report: Callable[[str], None] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (
            parts.path.rstrip("/") + "/_bulk?filter_path=errors,items.*.status,items.*.error"
        )
        self.url = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
        )
        self._headers = {"Content-Type": "application/x-ndjson", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"ApiKey {api_key}"
        elif parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self.index_pattern = index_pattern
        self.buffer_size = buffer_size
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.max_buffer_bytes = max_buffer_bytes
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._dropped = dropped
        self._report = report or _stderr
        self._index_key: str | None = None
        self._action = b""
        self._stopped = False
        self._start()
        register_at_fork(after_in_child=self._after_fork_in_child)

    def _start(self) -> None:
        self._buffer: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # buffer emptied, batch sent or failed
        self._wake = threading.Event()
        self._in_flight = 0
        self._bytes = 0  # of the buffer and the batch in flight
        self._abandoned = False  # close() counted the batch in flight as dropped
        self._failures = 0  # consecutive failed attempts
        self._retry_at = 0.0  # monotonic time before which no attempt is made
        self._closing = False
        self._flush_now = False  # flush() asked for the partial batch to go now
        self._unreported = 0  # rejected events not yet reported on stderr
        self._next_drop_report = 0.0
        self._unreported_failures = 0  # failed attempts not yet reported on stderr
        self._next_failure_report = 0.0
        self._close_deadline = float("inf")
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="telemetry-logs-es", daemon=True)
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
        lines = json_lines(events)
        items = [self._item(event, line) for event, line in zip(events, lines, strict=True)]
        with self._lock:
            room = self.max_buffer - len(self._buffer) - self._in_flight
            accepted = items if len(items) <= room else items[: max(0, room)]
            room_bytes = self.max_buffer_bytes - self._bytes
            size = sum(len(item) for item in accepted)
            if size > room_bytes:
                size, count = 0, 0
                for item in accepted:
                    if size + len(item) > room_bytes:
                        break
                    size += len(item)
                    count += 1
                accepted = accepted[:count]
            self._buffer.extend(accepted)
            self._bytes += size
            ready = len(self._buffer) >= self.buffer_size
        if len(accepted) < len(items):
            self._dropped.labels(self.name, "buffer_full").inc(len(items) - len(accepted))
        if ready:
            self._wake.set()

    def _item(self, event: dict[str, Any], line: str) -> bytes:
        timestamp = event.get("timestamp")
        key = timestamp[:19] if isinstance(timestamp, str) else None
        if key is None or key != self._index_key:
            self._action = self._action_for(key)
            self._index_key = key
        document = line.encode("utf-8", "backslashreplace")
        if isinstance(timestamp, str) and document.startswith(b"{"):
            stamp = _quote(timestamp).encode("utf-8", "backslashreplace")
            document = b'{"@timestamp": ' + stamp + b", " + document[1:]
        return self._action + document + b"\n"

    def _action_for(self, second: str | None) -> bytes:
        try:
            when = datetime.strptime(second or "", "%Y-%m-%dT%H:%M:%S")
        except ValueError:
            when = datetime.now(timezone.utc)
        index = when.strftime(self.index_pattern)
        return json.dumps({"index": {"_index": index}}).encode() + b"\n"

    # --- the sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic() + self.flush_interval
        while True:
            with self._lock:
                closing = self._closing
                waiting = len(self._buffer)
                if not waiting:
                    self._flush_now = False  # nothing to flush; the next event waits its turn
            now = time.monotonic()
            due = now >= next_tick or self._flush_now or self._failures > 0
            if closing or (
                waiting and now >= self._retry_at and (due or waiting >= self.buffer_size)
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
            until = self._retry_at if self._retry_at > now else next_tick
            self._wake.wait(max(0.0, until - now))
            self._wake.clear()

    def _ship_all(self, *, final: bool, partial: bool) -> None:
        """Send full batches, and the last partial one when ``partial``, until the buffer is
        empty or an attempt fails."""
        while True:
            with self._lock:
                if not self._buffer or (not partial and len(self._buffer) < self.buffer_size):
                    self._changed.notify_all()
                    return
                count = min(len(self._buffer), self.buffer_size)
                batch = [self._buffer.popleft() for _ in range(count)]
                self._in_flight = count
            try:
                retry = self._send(batch)
            except _Retry as exc:
                if self._requeue(batch, batch):
                    self._failed(str(exc), exc.retry_after)
                return
            if retry:
                if self._requeue(retry, batch):
                    self._failed(f"{len(retry)} of {len(batch)} events refused for now")
                return
            self._succeeded()
            with self._lock:
                self._in_flight = 0
                if not self._abandoned:
                    self._bytes -= sum(len(item) for item in batch)
                self._changed.notify_all()
            if final and self._past_deadline():
                return

    def _send(self, batch: list[bytes]) -> list[bytes]:
        """POST one bulk body; returns the items to retry. Raises _Retry for the whole batch."""
        body = b"".join(batch)
        while True:
            reused = self._conn is not None
            try:
                conn = self._conn
                if conn is None:
                    cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
                    conn = self._conn = cls(self._host, self._port, timeout=self.timeout)
                conn.request("POST", self._path, body=body, headers=self._headers)
                response = conn.getresponse()
                payload = response.read()
                break
            except (OSError, http.client.HTTPException) as exc:
                self._disconnect()
                # A kept-alive connection the server has closed meanwhile: once more, afresh.
                if reused and isinstance(exc, _STALE_CONNECTION):
                    continue
                raise _Retry(f"{self.url}: {type(exc).__name__}: {exc}") from None
        status = response.status
        if status in _RETRY_STATUSES:
            raise _Retry(
                f"{self.url}: HTTP {status} {_snippet(payload)}",
                _retry_after(response.getheader("Retry-After")),
            )
        if not 200 <= status < 300:
            self._drop(len(batch), "rejected", f"{self.url}: HTTP {status} {_snippet(payload)}")
            return []
        try:
            answer = json.loads(payload) if payload else {}
        except ValueError:
            raise _Retry(f"{self.url}: unreadable bulk response {_snippet(payload)}") from None
        if not answer.get("errors"):
            return []
        return self._item_failures(batch, answer.get("items") or [])

    def _item_failures(self, batch: list[bytes], items: list[Any]) -> list[bytes]:
        retry: list[bytes] = []
        rejected, reason = 0, ""
        for event, item in zip(batch, items, strict=False):
            result: Any = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
            status = result.get("status", 0) if isinstance(result, dict) else 0
            if 200 <= status < 300:
                continue
            if status in _RETRY_STATUSES:
                retry.append(event)
            else:
                rejected += 1
                error = result.get("error") if isinstance(result, dict) else None
                reason = reason or _error_text(error, status)
        if len(items) < len(batch):  # items missing from the answer: not known to be stored
            retry.extend(batch[len(items) :])
        if rejected:
            self._drop(rejected, "rejected", f"{self.url}: events rejected: {reason}")
        return retry

    def _requeue(self, events: list[bytes], batch: list[bytes]) -> bool:
        """Put ``events`` (of the ``batch`` sent) back in front; False when close() has counted
        the batch as dropped meanwhile."""
        with self._lock:
            self._in_flight = 0
            self._changed.notify_all()
            if self._abandoned:
                return False
            self._bytes -= sum(len(item) for item in batch)
            self._buffer.extendleft(reversed(events))
            self._bytes += sum(len(item) for item in events)
            return True

    def _failed(self, what: str, retry_after: float | None = None) -> None:
        delay = min(self.max_backoff, self.backoff * 2**self._failures)
        if retry_after is not None:  # the server's word, within reason
            delay = min(max(delay, retry_after), max(self.max_backoff, _REPORT_EVERY))
        self._failures += 1
        self._unreported_failures += 1
        now = time.monotonic()
        self._retry_at = now + delay
        if now < self._next_failure_report:
            return  # said already in this period; counted for the next line
        self._next_failure_report = now + _REPORT_EVERY
        with self._lock:
            waiting = len(self._buffer)
        attempts = self._unreported_failures
        self._unreported_failures = 0
        since = f" ({attempts} failed attempts since the last report)" if attempts > 1 else ""
        self._report(
            f"telemetry-web: Log shipping failed: elasticsearch {what}; {waiting} events "
            f"buffered, next attempt in {delay:g}s{since}"
        )

    def _succeeded(self) -> None:
        if self._failures:
            self._report(
                f"telemetry-web: Log shipping to elasticsearch {self.url} recovered after "
                f"{self._failures} failed attempts"
            )
        self._failures = 0
        self._unreported_failures = 0
        self._next_failure_report = 0.0
        self._retry_at = 0.0

    def _drop(self, count: int, reason: str, what: str) -> None:
        """Count events that will never be stored; say so at most once per ``_REPORT_EVERY``
        (a mapping conflict may refuse one field of every event)."""
        self._dropped.labels(self.name, reason).inc(count)
        self._unreported += count
        now = time.monotonic()
        if now >= self._next_drop_report:
            self._next_drop_report = now + _REPORT_EVERY
            self._report(
                f"telemetry-web: Log shipping failed: elasticsearch {what}; "
                f"{self._unreported} events dropped since the last report"
            )
            self._unreported = 0

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _past_deadline(self) -> bool:
        return time.monotonic() >= self._close_deadline

    # --- flush and close ------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Ask for the buffer to be shipped now and wait (up to ``timeout``) until it is; False
        when events are still waiting (Elasticsearch is away: they stay buffered)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._retry_at = min(self._retry_at, time.monotonic())  # an explicit flush tries now
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
        self._thread.join(timeout)
        with self._lock:
            left = len(self._buffer) + self._in_flight
            self._buffer.clear()
            self._abandoned = self._in_flight > 0
            self._bytes = 0
        # A send blocked on a hung Elasticsearch: shut the socket so it fails now instead of
        # at its timeout, and so no answer can arrive for a batch counted as dropped.
        conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if left:
            self._dropped.labels(self.name, "shutdown").inc(left)
            self._report(
                f"telemetry-web: Log shipping failed: elasticsearch {self.url}: {left} events "
                "not shipped at shutdown"
            )
        self._disconnect()


def _snippet(payload: bytes) -> str:
    text = payload[:200].decode("utf-8", "replace").strip()
    return text + ("..." if len(payload) > 200 else "")


def _error_text(error: Any, status: int) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')} (HTTP {status})"
    return f"{error or 'error'} (HTTP {status})"


def _stderr(line: str) -> None:
    # Straight to stderr: logging it would feed the failing pipeline again.
    print(line, file=sys.stderr, flush=True)
