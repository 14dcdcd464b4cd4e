"""The SQLite file itself: schema, one connection per process, batched writes, pruning, and the
one-line report when the file cannot be written.

Several processes (gunicorn workers) write to one file and the CLI reads it at the same time:
WAL mode lets readers run next to a writer, ``busy_timeout`` makes writers wait for each other,
and each batch is one ``BEGIN IMMEDIATE`` transaction (a few multi-row ``INSERT``
statements per table).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from .. import semconv as sc
from .._forksafe import register_at_fork
from . import _rows
from ._checkpoint import JOURNAL_SIZE_LIMIT, WRITER_AUTOCHECKPOINT, Checkpointer
from ._schema import SCHEMA as _SCHEMA

__all__ = ["ROUTE_SQL", "SCHEMA_VERSION", "SQLiteStore", "StoreUnavailable", "stored_route"]

# 2: the metric history (metric_series, metric_points, metric_snapshots; store/_metrics.py).
# 3: embedded alerting's alerts (store/_alerts.py).
# 4: span_rows/log_rows (interned strings, resources once, packed JSON, byte ids; the old
#    spans/logs tables are copied over and become views with the old columns).
SCHEMA_VERSION = 4
PRUNE_EVERY = 60.0  # seconds between two retention prunes by one writer
DEFAULT_MAX_SIZE = 1 << 30  # store.max_size: 1 GiB
REPORT_EVERY = 30.0  # seconds between two "Log store unavailable" lines per store file
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
_YIELD = 0.001  # seconds a log batch sleeps at a time while a span batch waits for the lock

SPAN_COLUMNS = (
    "trace_id, span_id, parent_id, name, kind, service, route, http_status, start_ns, "
    "duration_ns, status, status_message, attributes, events, resource"
)
# The route of a span row; server spans of requests no route matched written before the store
# kept `<unmatched>` (their `route` is NULL) count as `<unmatched>` too.
ROUTE_SQL = (
    "COALESCE(route, CASE WHEN kind = 'server' AND "
    f"json_extract(attributes, '$.\"{sc.ATTR_HTTP_METHOD}\"') IS NOT NULL "
    f"THEN '{sc.ROUTE_UNMATCHED}' END)"
)
LOG_COLUMNS = "ts, level, level_no, logger, service, event, trace_id, span_id, request_id, fields"


def stored_route(kind: str, attributes: dict[str, Any]) -> str | None:
    """The ``route`` column of a span: its ``http.route``, or ``<unmatched>`` for an HTTP server
    span without one (the span leaves ``http.route`` out, as OpenTelemetry's conventions ask,
    but the CLI finds and groups those requests under the label the metrics and logs use)."""
    route = attributes.get(sc.ATTR_HTTP_ROUTE)
    if route is not None:
        return str(route)
    if kind == "server" and sc.ATTR_HTTP_METHOD in attributes:
        return sc.ROUTE_UNMATCHED
    return None


_HEADER = b"SQLite format 3\x00"


def _identity_of(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


# One read-only descriptor per store file (by st_dev, st_ino) per process, for its header,
# shared by every store object on that file and NEVER closed: POSIX locks belong to a process
# and a file, so closing any descriptor of the file drops all the locks the process holds on it,
# those of SQLite's connections too (another store object's, the checkpointer's, the metric
# history's). Another process could then take the file as its last user, checkpoint and delete
# the WAL this process still writes: a corrupt database ("How To Corrupt An SQLite Database
# File", 2.2; SQLite defers closing its own descriptors for this reason). A forked child keeps the
# inherited descriptors (closing them there would drop the child's own locks).
_HEADER_FDS: dict[tuple[int, int], int] = {}
_HEADER_FDS_LOCK = threading.Lock()


def _renew_header_fds_lock() -> None:  # a fork while another thread held it
    global _HEADER_FDS_LOCK
    _HEADER_FDS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_header_fds_lock)


def _header_fd(path: str) -> tuple[tuple[int, int], int]:
    """The identity of the file at ``path`` and this process's descriptor of it (opened at the
    first call for that file; the caller must never close it)."""
    try:
        identity = _identity_of(os.stat(path))
    except FileNotFoundError:
        identity = (-1, -1)
    fd = _HEADER_FDS.get(identity)
    if fd is not None:  # (a file's inode number is not reused while a descriptor holds it)
        return identity, fd
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    identity = _identity_of(os.fstat(fd))
    with _HEADER_FDS_LOCK:
        # another thread may have opened one meanwhile: ours then stays open too, unused
        return identity, _HEADER_FDS.setdefault(identity, fd)


class StoreUnavailable(Exception):
    """The store file cannot be written now (read-only, locked, disk full, not a directory)."""


class _Reporter:
    """One stderr line per store file per report period, with what was dropped meanwhile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._dropped: dict[str, list[int]] = {}

    def failed(self, path: str, cause: str, spans: int, logs: int) -> None:
        with self._lock:
            counts = self._dropped.setdefault(path, [0, 0])
            counts[0] += spans
            counts[1] += logs
            now = time.monotonic()
            if now - self._last.get(path, float("-inf")) < REPORT_EVERY:
                return
            self._last[path] = now
            dropped_spans, dropped_logs = counts
            counts[0] = counts[1] = 0
        # Straight to stderr: logging it would feed the failing log store again.
        print(
            f"telemetry-web: Log store unavailable: {cause} ({path}); requests are still served, "
            f"{dropped_spans} spans and {dropped_logs} log events dropped; next report in "
            f"{int(REPORT_EVERY)}s at the earliest",
            file=sys.stderr,
            flush=True,
        )

    def reset(self) -> None:
        with self._lock:
            self._last.clear()
            self._dropped.clear()


REPORTER = _Reporter()
SIZE_REPORTER = _rows.SizeReporter(REPORT_EVERY)


def describe(exc: BaseException) -> str:
    """A short cause: ``database is locked``, ``Not a directory``, ``database or disk is full``."""
    if isinstance(exc, OSError) and not isinstance(exc, sqlite3.Error) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class SQLiteStore:
    """A writer for one store file: lazily opened per process, one transaction per batch.

    Before each batch the path is checked: a file removed or replaced (a corrupted store moved
    away) is opened afresh instead of writing on into the unlinked one, and a header another
    program wrote over makes the store unavailable until the file is replaced.

    After a failure, writes are skipped for a growing pause (1 s doubling to 30 s) so that a
    broken store costs nothing per batch; each skipped or failed batch raises
    :class:`StoreUnavailable` for the caller to count.
    """

    def __init__(
        self,
        path: str,
        *,
        retention: float,
        busy_timeout: float = 5.0,
        max_size: int | None = DEFAULT_MAX_SIZE,
    ) -> None:
        self.path = self.absolute(path)
        self.retention = retention
        self.max_size = max_size
        self._interned = _rows.Interner()
        self.busy_timeout = busy_timeout
        self._checkpointer = Checkpointer(self.path, busy_timeout)
        self._checkpointed: sqlite3.Connection | None = None  # the connection set up for it
        # The span exporter and the log sink share a store: a fork while one of them writes
        # must not leave the child's other one waiting for a lock no thread of it holds.
        register_at_fork(after_in_child=self._after_fork_in_child)
        self._waiting_lock = threading.Lock()
        self._spans_waiting = 0  # span batches waiting for the lock (log batches let them go)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None  # the file the connection writes
        self._fd: int | None = None  # that file's header descriptor (_HEADER_FDS)
        self._pid = 0
        self._last_prune = float("-inf")
        self._backoff = 0.0
        self._retry_at = float("-inf")
        self._last_error = ""

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # the parent's connection is left alone: see _connect
        self._waiting_lock = threading.Lock()
        self._spans_waiting = 0

    @staticmethod
    def absolute(path: str) -> str:
        """The path a store is known by."""
        return os.path.abspath(os.path.expanduser(path))

    def _connect(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            if self._same_file():
                return self._conn
            self._close_quietly()  # removed or replaced: write to the file now at the path
        # A forked worker never uses its parent's connection (SQLite forbids it): a new one.
        self._close_quietly()
        directory = os.path.dirname(self.path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
        except FileExistsError:  # a regular file where the directory should be
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", directory) from None
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._set_up(conn)
        except BaseException:
            conn.close()
            raise
        try:
            # one stat and one read per batch check the file (see _HEADER_FDS)
            identity, fd = _header_fd(self.path)
        except OSError:
            conn.close()
            raise
        self._conn, self._pid, self._fd, self._identity = conn, os.getpid(), fd, identity
        return conn

    def _same_file(self) -> bool:
        """Whether the path still holds the file our connection writes (an operator may have
        moved a broken store away); raises when another program wrote over its header."""
        try:
            identity = _identity_of(os.stat(self.path))
        except FileNotFoundError:
            return False
        if identity != self._identity or self._fd is None:
            return False
        header = os.pread(self._fd, len(_HEADER), 0)
        if header and header != _HEADER[: len(header)]:
            raise sqlite3.DatabaseError("file is not a database")
        return True

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the schema. Several writers may open a new file at once: switching the
        journal mode while another connection creates the schema is refused at once ("database
        is locked": SQLite's deadlock avoidance skips the busy timeout), so that is retried
        within the same timeout."""
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA cache_size = -32768")  # 32 MiB: the indexes' hot pages
                # multi-row INSERTs keep a statement journal: in memory, not a temporary file
                conn.execute("PRAGMA temp_store = MEMORY")
                if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        old = _rows.rename_old_tables(conn)  # schema 1-3: copied below
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        if old:
                            _rows.copy_old_tables(conn)
                        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() + pause > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    def write(
        self, spans: Sequence[tuple[Any, ...]] = (), logs: Sequence[tuple[Any, ...]] = ()
    ) -> None:
        """Insert ``spans``/``logs`` rows (the columns of the ``spans``/``logs`` views) in one
        transaction; prune past ``retention`` at most once a minute.

        Raises:
            StoreUnavailable: the rows were not written (and the failure was reported).
        """
        self.write_prepared(
            [_rows.prepare_span(row) for row in spans], [_rows.prepare_log(row) for row in logs]
        )

    def write_prepared(
        self, spans: Sequence[tuple[Any, ...]] = (), logs: Sequence[tuple[Any, ...]] = ()
    ) -> None:
        """:meth:`write` of rows already in the stored form but for their interned texts
        (:func:`._rows.prepare_span`, :func:`._rows.prepare_log`): what the writers pass, made
        before the lock is taken.

        Span batches go first: the batch processor holds few spans (a fraction of a second of
        traffic) where the log pipeline holds seconds of lines, so a log batch waits while a
        span batch does (a log writer with a backlog would otherwise take the lock again and
        again before the span writer's thread runs).

        Raises:
            StoreUnavailable: the rows were not written (and the failure was reported).
        """
        if spans:
            with self._waiting_lock:
                self._spans_waiting += 1
        else:
            waited = 0.0
            while self._spans_waiting and waited < self.busy_timeout:
                time.sleep(_YIELD)
                waited += _YIELD
        try:
            self._lock.acquire()
        finally:
            if spans:
                with self._waiting_lock:
                    self._spans_waiting -= 1
        try:
            self._write_locked(spans, logs)
        finally:
            self._lock.release()
        self._checkpointer.wrote()

    def _write_locked(
        self, spans: Sequence[tuple[Any, ...]], logs: Sequence[tuple[Any, ...]]
    ) -> None:
        now = time.monotonic()
        if now < self._retry_at:
            self._fail(None, len(spans), len(logs))
        try:
            conn = self._connect()
            if conn is not self._checkpointed:  # checkpoints in the background from now on
                conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}")
                conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
                self._checkpointed = conn
            conn.execute("BEGIN IMMEDIATE")
            self._interned.begin(conn)
            try:
                if spans:
                    rows = self._interned.spans(spans)
                    _rows.insert(conn, "span_rows", _rows.SPAN_ROW_COLUMNS, rows)
                if logs:
                    rows = self._interned.logs(logs)
                    _rows.insert(conn, "log_rows", _rows.LOG_ROW_COLUMNS, rows)
                if now - self._last_prune >= PRUNE_EVERY:
                    self._prune(conn)
                    self._last_prune = now
                self._prune_to_size(conn)
                conn.execute("COMMIT")
                self._interned.committed()
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            self._backoff = min(MAX_BACKOFF, max(FIRST_BACKOFF, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            self._close_quietly()
            self._fail(exc, len(spans), len(logs))
        self._backoff = 0.0

    def _prune(self, conn: sqlite3.Connection) -> None:
        cutoff = time.time() - self.retention
        conn.execute("DELETE FROM span_rows WHERE start_ns < ?", (int(cutoff * 1e9),))
        conn.execute("DELETE FROM log_rows WHERE ts < ?", (cutoff,))

    def _prune_to_size(self, conn: sqlite3.Connection) -> None:
        """Past ``max_size`` (pages in use times the page size, read from the header), the
        oldest spans and log lines go first, reported once per period."""
        if self.max_size is None:
            return
        used = _rows.used_bytes(conn)
        if used > self.max_size:
            spans, logs = _rows.prune_to_size(conn, self.max_size, used)
            SIZE_REPORTER.pruned(self.path, self.max_size, spans, logs)

    def upgrade(self) -> None:
        """Open the file once: creates the schema, or brings an older store's rows over."""
        with self._lock:
            self._connect()

    def prune(self) -> None:
        """Delete what is older than ``retention`` now (the writers do it once a minute)."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            self._prune(conn)
            conn.execute("COMMIT")

    def _fail(self, exc: BaseException | None, spans: int, logs: int) -> None:
        if exc is not None:
            self._last_error = describe(exc)
        REPORTER.failed(self.path, self._last_error, spans, logs)
        raise StoreUnavailable(f"Log store unavailable: {self._last_error} ({self.path})")

    def _close_quietly(self) -> None:
        conn, self._conn = self._conn, None
        self._fd = None  # the process's shared header descriptor: never closed (_HEADER_FDS)
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        self._checkpointer.stop()
        with self._lock:
            self._close_quietly()
            # (the exporter and the sink share a store: a later engine on the same file starts
            # without the pause an earlier failure left)
            self._backoff, self._retry_at = 0.0, float("-inf")
