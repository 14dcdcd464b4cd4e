"""Embedded alerting's state in the store: one row per alert instance, and the lock that elects
the one process per host that evaluates the rules.

An instance is ``pending`` while its condition holds for less than the rule's ``for:``,
``firing`` after that and ``resolved`` once the condition stops holding (a pending instance
whose condition stops is deleted, as Prometheus forgets it). At most one pending or firing
row exists per fingerprint (a partial unique index); a resolved row stays until the store's
retention, so ``telemetry alerts list`` shows what fired recently. The evaluator reads the
active rows each round and writes the round's changes in one transaction: whichever process
holds the lock next carries on from the same state (nothing is notified twice).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ._db import SQLiteStore
from ._metrics import _Leadership
from ._query import StoreError

__all__ = [
    "AlertLock",
    "AlertRecord",
    "AlertState",
    "AlertStore",
    "alert_lock_path",
    "fingerprint",
    "read_alerts",
]

AlertState = Literal["pending", "firing", "resolved"]
STATES: tuple[AlertState, ...] = ("firing", "pending", "resolved")

_COLUMNS = (
    "fingerprint, name, labels, annotations, state, value, active_at, fired_at, resolved_at, "
    "notified_at, evaluated_at"
)


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over the sorted names and values,
    each followed by the byte 0xff, as 16 hex digits."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode() + b"\xff":
                value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


@dataclass(frozen=True)
class AlertRecord:
    """One alert instance: a rule's condition holding for one label set."""

    name: str  # the rule's alertname
    labels: dict[str, str]  # alertname included
    annotations: dict[str, str]
    state: AlertState
    active_at: float  # epoch seconds the condition started holding
    evaluated_at: float
    value: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    notified_at: float | None = None  # the latest notification of this instance
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint(self.labels))

    def evolve(self, **changes: Any) -> AlertRecord:
        """A copy with ``changes`` (the fingerprint follows new labels)."""
        if "labels" in changes and "fingerprint" not in changes:
            changes["fingerprint"] = ""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "state": self.state, "labels": self.labels,
            "annotations": self.annotations, "value": self.value,
            "active_at": self.active_at, "fired_at": self.fired_at,
            "resolved_at": self.resolved_at, "notified_at": self.notified_at,
            "evaluated_at": self.evaluated_at, "fingerprint": self.fingerprint,
        }  # fmt: skip

    def _row(self) -> tuple[Any, ...]:
        return (
            self.fingerprint, self.name, _dump(self.labels), _dump(self.annotations), self.state,
            self.value, self.active_at, self.fired_at, self.resolved_at, self.notified_at,
            self.evaluated_at,
        )  # fmt: skip


def _dump(mapping: dict[str, str]) -> str:
    return json.dumps(mapping, sort_keys=True, separators=(",", ":"))


def _record(row: Sequence[Any]) -> AlertRecord:
    (fp, name, labels, annotations, state, value, active_at, fired_at, resolved_at, notified_at,
     evaluated_at) = row  # fmt: skip
    return AlertRecord(
        name=name, labels=json.loads(labels), annotations=json.loads(annotations), state=state,
        value=value, active_at=active_at, fired_at=fired_at, resolved_at=resolved_at,
        notified_at=notified_at, evaluated_at=evaluated_at, fingerprint=fp,
    )  # fmt: skip


class AlertStore(SQLiteStore):
    """The evaluator's side: the active instances, and one round's changes per transaction.

    Raises:
        sqlite3.Error, OSError: the store cannot be read or written (the evaluator reports it
            and tries again next round).
    """

    def active(self) -> dict[str, AlertRecord]:
        """The pending and firing instances, by fingerprint."""
        with self._lock:
            conn = self._connect()
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM alerts WHERE state IN ('pending', 'firing')"
            ).fetchall()
        return {r.fingerprint: r for r in map(_record, rows)}

    def apply(
        self,
        upserts: Sequence[AlertRecord],
        deletes: Sequence[str] = (),
        *,
        now: float | None = None,
    ) -> None:
        """Write one round: ``upserts`` replace the active row of their fingerprint (a
        resolved one stays as history), ``deletes`` drop active rows (pending ones whose
        condition stopped); resolved rows older than ``retention`` are pruned."""
        now = time.time() if now is None else now
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for record in upserts:
                    conn.execute(
                        "DELETE FROM alerts WHERE fingerprint = ? "
                        "AND state IN ('pending', 'firing')",
                        (record.fingerprint,),
                    )
                    conn.execute(
                        f"INSERT INTO alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        record._row(),
                    )
                conn.executemany(
                    "DELETE FROM alerts WHERE fingerprint = ? AND state = 'pending'",
                    [(fp,) for fp in deletes],
                )
                conn.execute(
                    "DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?",
                    (now - self.retention,),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise


def read_alerts(
    path: str | os.PathLike[str],
    *,
    states: Sequence[str] = STATES,
    since: float | None = None,
) -> list[AlertRecord]:
    """The alerts of a store file (opened read-only), firing first, then pending, then
    resolved; within a state the newest first. ``since``: resolved ones that resolved after
    this epoch time only.

    Raises:
        StoreError: no store file, or it cannot be read.
    """
    full = os.path.abspath(os.fspath(path))
    if not os.path.isfile(full):
        raise StoreError(
            f"no telemetry store at {full}: run the app with the store enabled first, or point "
            "--store (or TELEMETRY_STORE__PATH) at it"
        )
    try:
        conn = sqlite3.connect(f"file:{full}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the telemetry store at {full}: {exc}") from None
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "alerts" not in tables:
            return []
        rows = conn.execute(f"SELECT {_COLUMNS} FROM alerts").fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the telemetry store at {full}: {exc}") from None
    finally:
        conn.close()
    records = [
        r
        for r in map(_record, rows)
        if r.state in states
        and not (r.state == "resolved" and since is not None and (r.resolved_at or 0) < since)
    ]
    order = {state: i for i, state in enumerate(STATES)}
    records.sort(key=lambda r: (order[r.state], -_when(r), r.name, r.fingerprint))
    return records


def _when(record: AlertRecord) -> float:
    if record.state == "resolved":
        return record.resolved_at or 0.0
    if record.state == "firing":
        return record.fired_at or 0.0
    return record.active_at


def alert_lock_path(store_path: str, service: str, multiprocess_dir: str | None) -> str:
    """Where the evaluator lock lives: in the multiprocess directory (its workers are one
    service), else next to the store, one per service; the metric history's scheme."""
    if multiprocess_dir is not None:
        return os.path.join(multiprocess_dir, ".telemetry-web-alerts.lock")
    digest = hashlib.sha1(service.encode(), usedforsecurity=False).hexdigest()[:12]
    return f"{os.path.abspath(os.path.expanduser(store_path))}.alerts-{digest}.lock"


# The metric history's non-blocking flock, elected the same way: the holder evaluates, the
# others try again every interval, and the kernel drops the lock of a process that dies.
AlertLock = _Leadership
