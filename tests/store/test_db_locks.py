"""Closing one store object must not unlock the file for the others of the process: POSIX locks
belong to a process and a file, so closing any descriptor of the file drops them all, SQLite's
connections' included, and another process then checkpoints and deletes the WAL this process
still writes (its later rows are lost to every other process; with concurrent writers the file
ends up malformed)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from telemetry_web.store import SQLiteStore

# SQLite's unix VFS: a connection's SHARED lock is a read lock on these bytes of the database
# file; the EXCLUSIVE lock that lets a closing connection delete the WAL is a write lock on them.
SHARED_FIRST = 0x40000000 + 2
SHARED_SIZE = 510

_CLOSE_A_READER = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    print(conn.execute("SELECT count(*) FROM log_rows").fetchone()[0])
    conn.close()  # would checkpoint and delete the WAL if it were the file's last user
"""

_COUNT = """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1])
    print(conn.execute("SELECT count(*) FROM log_rows").fetchone()[0])
"""

_TRY_EXCLUSIVE = f"""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, {SHARED_SIZE}, {SHARED_FIRST})
    except OSError:
        print("refused")
    else:
        print("granted")
"""


def _python(code: str, path: Path) -> str:
    """Runs ``code`` in a new interpreter (not a fork: it shares none of our locks)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def _log(n: int) -> tuple[object, ...]:
    return (time.time(), "info", 20, "app", "svc", f"event {n}", None, None, None, "{}")


def _two_stores_one_closed(path: Path) -> SQLiteStore:
    """Two store objects of this process write ``path``; the first is closed (an engine shut
    down): the second, still open, is returned."""
    closed = SQLiteStore(str(path), retention=10 * 365 * 86400)
    remaining = SQLiteStore(str(path), retention=10 * 365 * 86400)
    closed.write(logs=[_log(0)])
    remaining.write(logs=[_log(1)])
    closed.close()
    return remaining


def test_closing_a_store_leaves_the_file_locked_for_the_other_stores_of_the_process(
    tmp_path: Path,
) -> None:
    """While a store's connection is open, no other process can take the exclusive lock on the
    file, even after another store object of this process on that file was closed."""
    path = tmp_path / "telemetry.db"
    remaining = _two_stores_one_closed(path)
    try:
        assert _python(_TRY_EXCLUSIVE, path) == "refused"
    finally:
        remaining.close()
    assert _python(_TRY_EXCLUSIVE, path) == "granted"  # the probe does detect a free file


def test_rows_written_after_another_store_closed_reach_other_processes(tmp_path: Path) -> None:
    """Another process that opens and closes the file must not take the WAL away from a store
    still writing it: the rows that store writes next are read by every process."""
    path = tmp_path / "telemetry.db"
    remaining = _two_stores_one_closed(path)
    try:
        assert _python(_CLOSE_A_READER, path) == "2"
        remaining.write(logs=[_log(2), _log(3)])
        assert _python(_COUNT, path) == "4"
    finally:
        remaining.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM log_rows").fetchone()[0] == 4
    conn.close()
