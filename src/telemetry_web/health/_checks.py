"""The check kinds: TCP connect, HTTP request, script, disk space and any user function.

A check's ``run(timeout)`` returns an :class:`~._state.Outcome` (``None`` counts as a pass) or
raises (the exception is the error). Blocking checks run in a daemon thread of their own and
async ones on the runner's event loop; the runner cuts either at the timeout. Checks that keep
their own deadline (``enforces_timeout``: scripts are killed, sockets time out) get a short
grace so that their own, more precise, report wins.
"""

from __future__ import annotations

import http.client
import inspect
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ._state import Outcome

__all__ = [
    "MAX_OUTPUT_BYTES",
    "Check",
    "DiskCheck",
    "FunctionCheck",
    "HttpCheck",
    "ScriptCheck",
    "TcpCheck",
    "error_text",
    "to_outcome",
]

# Bytes of script output or HTTP body kept in a report.
MAX_OUTPUT_BYTES = 2048
_MAX_ERROR = 500


class Check:
    """Base class of the check kinds; subclass it for a kind of your own."""

    kind: ClassVar[str] = "custom"
    #: Awaited on the runner's loop (True) or run in a thread of its own (False).
    is_async: bool = False
    #: Keeps its own deadline; the runner allows a short grace before cutting it.
    enforces_timeout: bool = False

    @abstractmethod
    def run(self, timeout: float) -> Outcome | Awaitable[Outcome | None] | None:
        """One run of the check, finished within ``timeout`` seconds."""

    def describe(self) -> str:
        """What is checked, for the verbose report (never a secret)."""
        return self.kind

    def cancel(self) -> None:
        """Stop work in flight (the runner is stopping): kill processes, close sockets."""

    def close(self) -> None:
        """Release what the check holds (it was removed, or the Telemetry shut down)."""
        self.cancel()

    def after_fork(self) -> None:
        """In a forked child: forget connections and processes that belong to the parent."""


def error_text(exc: BaseException) -> str:
    """``Type: message`` on one line, bounded."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def to_outcome(value: object) -> Outcome:
    """A check's return value as an outcome: None and True pass, False fails."""
    if isinstance(value, Outcome):
        return value
    if value is False:
        return Outcome(False, "returned False")
    return Outcome(True)


def _truncate(data: bytes, total: int | None = None) -> str:
    """``data`` as text, cut at :data:`MAX_OUTPUT_BYTES` (``total``: the full size, if known)."""
    text = data[:MAX_OUTPUT_BYTES].decode("utf-8", "replace").strip()
    if total is not None and total > MAX_OUTPUT_BYTES:
        text += f"\n… [truncated: {total} bytes, first {MAX_OUTPUT_BYTES} kept]"
    elif total is None and len(data) > MAX_OUTPUT_BYTES:
        text += f"\n… [truncated to {MAX_OUTPUT_BYTES} bytes]"
    return text


class TcpCheck(Check):
    """Healthy when a TCP connection to ``host:port`` opens within the timeout."""

    kind = "tcp"
    enforces_timeout = True

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    def run(self, timeout: float) -> Outcome:
        with socket.create_connection((self.host, self.port), timeout=timeout):
            return Outcome(True)

    def describe(self) -> str:
        return f"{self.host}:{self.port}"


class HttpCheck(Check):
    """Healthy when ``method url`` answers ``expected_status`` (redirects are not followed)."""

    kind = "http"
    enforces_timeout = True

    def __init__(
        self,
        url: str,
        *,
        method: str = "GET",
        expected_status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"health check url must be an http(s) URL, got {url!r}")
        self.url = url
        self.method = method.upper()
        self.expected_status = expected_status
        self.headers = dict(headers or {})
        self._parts = parts

    def run(self, timeout: float) -> Outcome:
        parts = self._parts
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = cls(parts.hostname or "", parts.port, timeout=timeout)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request(self.method, target, headers=self.headers)
            response = connection.getresponse()
            body = response.read(MAX_OUTPUT_BYTES + 1)
        finally:
            connection.close()
        if response.status == self.expected_status:
            return Outcome(True)
        return Outcome(
            False,
            f"HTTP {response.status} {response.reason} (expected {self.expected_status})",
            _truncate(body) or None,
        )

    def describe(self) -> str:
        parts = self._parts
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc += f":{parts.port}"
        return f"{self.method} {parts.scheme}://{netloc}{parts.path or '/'}"  # no credentials


class ScriptCheck(Check):
    """Healthy when ``command`` exits with 0; killed (with its children) at the timeout.

    ``command`` is a string split like a shell would (``sh -c '...'`` for pipes and globs) or
    an argument list. Standard output and error are captured together and kept in the report,
    truncated to :data:`MAX_OUTPUT_BYTES` bytes.
    """

    kind = "script"
    enforces_timeout = True

    def __init__(self, command: str | Sequence[str]) -> None:
        self.args = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.args:
            raise ValueError("health check script command is empty")
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def run(self, timeout: float) -> Outcome:
        with tempfile.TemporaryFile() as out:  # no pipe to fill up, no output held in memory
            with self._lock:  # cancel() waits until the process is registered, then kills it
                process = subprocess.Popen(
                    self.args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killed with its children
                    close_fds=True,
                )
                self._running.add(process)
            killed = False
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
                _kill_group(process)
                code = process.wait()
            finally:
                with self._lock:
                    self._running.discard(process)
            total = out.tell()
            out.seek(0)
            output = _truncate(out.read(MAX_OUTPUT_BYTES), total) or None
        if killed:
            return Outcome(False, f"killed after its {timeout:g}s timeout", output)
        if code == 0:
            return Outcome(True, output=output)
        if code < 0:
            return Outcome(False, f"killed by {signal.Signals(-code).name}", output)
        return Outcome(False, f"exited with status {code}", output)

    def describe(self) -> str:
        return shlex.join(self.args)

    def cancel(self) -> None:
        with self._lock:
            running = list(self._running)
        for process in running:
            _kill_group(process)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._running = set()  # the parent's processes: not ours to kill


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass


class DiskCheck(Check):
    """Healthy while the file system holding ``path`` has at least ``min_free`` bytes (and/or
    ``min_free_percent`` percent) free."""

    kind = "disk"

    def __init__(
        self, path: str, *, min_free: int | None = None, min_free_percent: float | None = None
    ) -> None:
        if min_free is None and min_free_percent is None:
            raise ValueError("a disk check needs min_free or min_free_percent")
        self.path = path
        self.min_free = min_free
        self.min_free_percent = min_free_percent

    def run(self, timeout: float) -> Outcome:
        usage = shutil.disk_usage(self.path)
        percent = 100.0 * usage.free / usage.total if usage.total else 0.0
        summary = f"{_size(usage.free)} free of {_size(usage.total)} ({percent:.1f}%)"
        if self.min_free is not None and usage.free < self.min_free:
            return Outcome(False, f"{self.path}: {summary}, below {_size(self.min_free)}")
        if self.min_free_percent is not None and percent < self.min_free_percent:
            return Outcome(False, f"{self.path}: {summary}, below {self.min_free_percent:g}%")
        return Outcome(True, output=summary)

    def describe(self) -> str:
        limits = [_size(self.min_free)] if self.min_free is not None else []
        if self.min_free_percent is not None:
            limits.append(f"{self.min_free_percent:g}%")
        return f"{self.path} (min free {' and '.join(limits)})"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n}B"  # pragma: no cover


class FunctionCheck(Check):
    """Any callable, sync or async: None or True is healthy, False or an exception is not.

    Async functions run on the runner's event loop (the app's loop under ASGI), sync ones in a
    thread of their own, so a slow one never holds up the others or the loop.
    """

    kind = "function"

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            getattr(function, "__call__", None)  # noqa: B004 - an async __call__ counts too
        )

    def run(self, timeout: float) -> Any:
        return self.function()

    def describe(self) -> str:
        module = getattr(self.function, "__module__", None)
        name = getattr(self.function, "__qualname__", None) or type(self.function).__name__
        return f"{module}.{name}" if module else name
