"""WAL checkpoints off the writers' path.

A commit appends the pages it changed to the WAL; a checkpoint copies them into the database
file (reading the WAL, writing the file, two fsyncs). Left to SQLite's automatic checkpoint, that
runs on the committing writer every 1,000 pages: at 1M spans a batch dirties about that many
pages (random-order index leaves), so nearly every batch paid a checkpoint under the write lock
(about two thirds of the writer's time). Here one thread per store file and process checkpoints
in the background (``PASSIVE``: writers go on appending meanwhile) a moment after writes, on a
connection of its own opened for the round (so a file replaced at the path is followed, and a
fork has nothing to share). When the WAL has grown past :data:`RESTART_BYTES` anyway (readers
holding old snapshots, or writers never pausing long enough for the log to wrap), one short
``RESTART`` checkpoint lets the next writer start the log from its beginning. The writers keep
SQLite's automatic checkpoint at :data:`WRITER_AUTOCHECKPOINT` pages as the backstop.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import urllib.parse

__all__ = ["RESTART_BYTES", "WRITER_AUTOCHECKPOINT", "Checkpointer"]

INTERVAL = 0.2  # seconds between the first write after a checkpoint and the next checkpoint
RESTART_BYTES = 64 << 20  # a WAL file past this is checkpointed with RESTART
RESTART_WAIT_MS = 50  # how long a RESTART may hold new writers back waiting for readers
WRITER_AUTOCHECKPOINT = 32768  # pages (128 MiB at 4 KiB): the writers' own checkpoint, a backstop
JOURNAL_SIZE_LIMIT = RESTART_BYTES  # what a WAL file is cut back to when the log wraps


class Checkpointer:
    """Checkpoints one store file in the background after :meth:`wrote` (thread-safe, fork
    aware: a forked child starts its own thread at its first write)."""

    def __init__(self, path: str, busy_timeout: float) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._uri = f"file:{urllib.parse.quote(path)}?mode=rw"
        self._lock = threading.Lock()
        self._written = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # the running thread's
        self._pid = os.getpid()

    def wrote(self) -> None:
        """A writer committed: checkpoint within :data:`INTERVAL` seconds."""
        self._written = True
        if self._pid != os.getpid():  # forked: the parent's thread and lock are not ours
            self._pid, self._lock, self._thread = os.getpid(), threading.Lock(), None
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="telemetry-store-checkpoint",
                daemon=True,
            )  # fmt: skip
            self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(INTERVAL):
            if self._written:
                self._written = False
                self.checkpoint()

    def checkpoint(self) -> None:
        """One round: ``PASSIVE``, then ``RESTART`` when the WAL file is past its bound. Any
        failure is left to the writers to meet and report."""
        try:
            conn = sqlite3.connect(
                self._uri, uri=True, timeout=self.busy_timeout, isolation_level=None
            )
        except sqlite3.Error:
            return
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            try:
                size = os.path.getsize(self.path + "-wal")
            except OSError:
                size = 0
            if size > RESTART_BYTES:
                conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
                conn.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error:
            pass
        finally:
            conn.close()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread (its round in progress finishes first, within ``timeout``)."""
        if self._pid != os.getpid():
            return
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
