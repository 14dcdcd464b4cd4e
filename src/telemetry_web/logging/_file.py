"""The file sink: JSON lines appended to one file, rotated by size, safe for several processes.

Several processes (gunicorn workers, each with its own writer thread) may write the same path.
What keeps every line whole, written once and never lost across a rotation:

- Each batch is one ``write()`` of complete lines to a descriptor opened with ``O_APPEND``, made
  while holding an exclusive ``flock`` on ``<path>.lock`` (a file that is never removed, so every
  process always locks the same inode). A batch the disk had room for only in part is cut off
  again (the file truncated to its size before the batch): a full disk loses whole batches,
  counted, and never leaves half a line for the next batch to run into.
- Under that lock the writer ``stat()``-s the path and compares it with its open descriptor: when
  another process has rotated (the inode differs, or the path is gone) it reopens first. Nobody
  can write to a file after it was renamed, so a batch lands entirely in exactly one file.
- Rotation happens under the same lock: when the batch would take the file past ``max_size``,
  the file is renamed to ``<path>.<UTC time>`` (``app.log.20260129T101530.123456``), a new one is
  opened, and the oldest rotated files beyond ``max_files`` are deleted.
- Compression (``compress``) runs afterwards on a thread of the process that rotated, outside
  the lock (no writer waits for gzip): ``<name>.gz.tmp`` is written, renamed to ``<name>.gz``,
  and the uncompressed file removed.

A process forked with the sink open (gunicorn's ``preload_app``) reopens both descriptors in
the child on its first write: a ``flock`` belongs to the open file description, which the child
would otherwise share with its parent.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from ._sinks import json_lines

__all__ = ["FileSink"]

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_STAMP = "%Y%m%dT%H%M%S"


class FileSink:
    """JSON lines in ``path``, rotated past ``max_size`` bytes, keeping ``max_files`` rotated
    files (gzip-compressed when ``compress``).

    Raises:
        OSError: when the directory cannot be created or the file cannot be opened.
    """

    name = "file"

    def __init__(
        self, path: str | os.PathLike[str], *, max_size: int, max_files: int, compress: bool
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.max_size = max_size
        self.max_files = max_files
        self.compress = compress
        directory, base = os.path.split(self.path)
        self._directory = directory
        self._rotated = re.compile(re.escape(base) + r"\.(\d{8}T\d{6}\.\d{6})(\.gz)?$")
        self._compressing: list[threading.Thread] = []
        self._fd = -1
        self._lock_fd = -1
        self._identity: tuple[int, int] | None = None
        os.makedirs(directory, exist_ok=True)
        self._open()

    # --- descriptors ------------------------------------------------------------------------

    def _open(self) -> None:
        self._pid = os.getpid()
        self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._open_data()

    def _open_data(self) -> os.stat_result:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._fd = os.open(self.path, _FLAGS, 0o644)
        st = os.fstat(self._fd)
        self._identity = (st.st_dev, st.st_ino)
        return st

    def _reopen_in_child(self) -> None:
        # Our copies of the parent's descriptors: closing them leaves the parent's untouched.
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1
        self._compressing = []
        self._open()

    def _current(self) -> os.stat_result:
        """The path's file, reopened if another process rotated it (call with the lock held)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self._open_data()
        if (st.st_dev, st.st_ino) != self._identity:
            return self._open_data()
        return st

    # --- writing ----------------------------------------------------------------------------

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        lines = json_lines(events)
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")
        if os.getpid() != self._pid:
            self._reopen_in_child()
        rotated: str | None = None
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            st = self._current()
            size = st.st_size
            if size > 0 and size + len(data) > self.max_size:
                rotated = self._rotate()
                size = 0
            self._append(data, size)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if rotated is not None and self.compress:
            thread = threading.Thread(
                target=self._compress, args=(rotated,), name="telemetry-logs-gzip", daemon=True
            )
            self._compressing = [t for t in self._compressing if t.is_alive()]
            self._compressing.append(thread)
            thread.start()

    def _append(self, data: bytes, size: int) -> None:
        """Write the whole batch or none of it (lock held): a write cut short by a full disk is
        cut off again, so the file never keeps a torn line for the next batch to run into."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            if len(view) < len(data):
                try:
                    os.ftruncate(self._fd, size)
                except OSError:
                    pass
            raise

    def _rotate(self) -> str:
        """Rename the current file aside, open a new one, delete the oldest (lock held)."""
        now = time.time()
        while True:
            stamp = time.strftime(_STAMP, time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
            name = f"{self.path}.{stamp}"
            if not os.path.exists(name) and not os.path.exists(name + ".gz"):
                break
            now += 1e-6  # the clock went back, or two rotations in one microsecond
        os.rename(self.path, name)
        self._open_data()
        self._prune()
        return name

    def _prune(self) -> None:
        found: dict[str, list[str]] = {}
        for entry in os.listdir(self._directory):
            match = self._rotated.match(entry)
            if match:
                found.setdefault(match.group(1), []).append(entry)
        for stamp in sorted(found)[: max(0, len(found) - self.max_files)]:
            for entry in found[stamp]:
                try:
                    os.unlink(os.path.join(self._directory, entry))
                except FileNotFoundError:
                    pass

    def _compress(self, name: str) -> None:
        tmp = name + ".gz.tmp"
        try:
            with open(name, "rb") as source, gzip.open(tmp, "wb", compresslevel=6) as target:
                shutil.copyfileobj(source, target, 1 << 20)
            if not os.path.exists(name):  # pruned meanwhile: do not bring it back compressed
                os.unlink(tmp)
                return
            os.replace(tmp, name + ".gz")
            os.unlink(name)
        except FileNotFoundError:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        except OSError as exc:
            print(
                f"telemetry-web: Log shipping failed (file): gzip {name}: {exc!r}", file=sys.stderr
            )

    # --- lifecycle ----------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Wait for compressions in progress, then close the descriptors."""
        deadline = time.monotonic() + timeout
        for thread in self._compressing:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._compressing = []
        if os.getpid() == self._pid:
            for fd in (self._fd, self._lock_fd):
                if fd >= 0:
                    os.close(fd)
            self._fd = self._lock_fd = -1
