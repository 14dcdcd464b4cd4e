"""What the sinks that ship events over the network share: ``Retry-After`` in seconds, one
kept-alive HTTP connection, and the backoff and stderr reports of a sender thread.

The reports (``telemetry-web: Log shipping failed: <sink> <what>; ...``) are printed at most
once per :data:`REPORT_EVERY` seconds each: the first failure at once, then one line per period
with the number of failed attempts since the last line, and one line when shipping recovers.
"""

from __future__ import annotations

import email.utils
import http.client
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping

__all__ = ["REPORT_EVERY", "Backoff", "KeptAliveConnection", "retry_after", "stderr"]

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
