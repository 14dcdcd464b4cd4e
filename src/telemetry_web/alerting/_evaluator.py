"""Embedded alerting: the catalogue's rules evaluated every ``alerting.interval`` over the
store's metric history and the health checks' state, by one process per host.

::

    alerting:
      interval: 15s
      repeat_interval: 4h
      receivers:
        - {name: ops, type: webhook, url: http://127.0.0.1:9000/hook}
      routes:
        - {receiver: ops, match: {severity: critical}}
      rules:
        error_ratio: {threshold: 0.05, for: 5m, window: 5m}

Every process builds an :class:`AlertEvaluator`; only the one holding a non-blocking ``flock``
(the metric history's mechanism, :class:`~telemetry_web.store._alerts.AlertLock`) evaluates,
the others try again every interval and take over when the holder exits or dies. One round:

1. each rule's :class:`~telemetry_web.alerting._catalogue.Condition` gives a value per group
   of its ``by`` labels (error ratio, quantile and increase over the rule's window from the
   metric history; the health kinds from this process's health checks, which every worker
   runs alike);
2. the active instances are read from the store: a group whose condition holds is
   ``pending`` until it has held for the rule's ``for``, then ``firing``; a firing instance
   whose condition stops is ``resolved``, a pending one is forgotten;
3. the round's changes are written in one transaction, then the notifications are queued:
   ``firing`` when an instance fires and again every ``repeat_interval`` while it fires,
   ``resolved`` when it resolves, one per rule per receiver (its routes, else
   ``default_receiver``). Queuing never waits (:mod:`._notifiers`).

Nothing here runs on the request path: the evaluator is a daemon thread.
"""

from __future__ import annotations

import socket
import sqlite3
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .. import semconv as sc
from .._forksafe import ForkLock
from ..config._model import AlertingSettings, AlertRouteSettings, TelemetrySettings
from ..store._alerts import AlertLock, AlertRecord, AlertStore, alert_lock_path
from ..store._db import REPORT_EVERY, describe
from ..store._metric_query import (
    MetricHistory,
    bucket_counts,
    error_ratio,
    histogram_quantile,
)
from ..store._query import StoreError
from ._catalogue import AlertRule, Condition, alert_rules
from ._notifiers import LogNotifier, Notification, ReceiverThread, build_notifier

__all__ = [
    "AlertEvaluator",
    "HealthRows",
    "build_receivers",
    "embedded_alerting",
    "health_rows",
    "route",
]

# (labels, value) of each health check as health_check_status would show it.
HealthRows = Callable[[], list[tuple[dict[str, str], float]]]
Group = tuple[str, ...]


def route(
    labels: Mapping[str, str], routes: Sequence[AlertRouteSettings], default: str
) -> list[str]:
    """The receivers of an alert: every route whose ``match`` its labels satisfy, else the
    default receiver."""
    chosen: list[str] = []
    for r in routes:
        if all(labels.get(k) == v for k, v in r.match.items()) and r.receiver not in chosen:
            chosen.append(r.receiver)
    return chosen or [default]


class _Reporter:
    """One ``Alerting unavailable`` line per period while the store cannot be used."""

    def __init__(self) -> None:
        self._last = float("-inf")
        self._failed = 0

    def failed(self, path: str, cause: str) -> None:
        self._failed += 1
        now = time.monotonic()
        if now - self._last < REPORT_EVERY:
            return
        self._last = now
        failed, self._failed = self._failed, 0
        print(
            f"telemetry-web: Alerting unavailable: {cause} ({path}); {failed} evaluation rounds "
            f"skipped; requests are still served; next report in {int(REPORT_EVERY)}s at the "
            "earliest",
            file=sys.stderr,
            flush=True,
        )


class AlertEvaluator:
    """Evaluates ``rules`` every ``settings.interval`` while this process holds the lock.

    Args:
        rules: the catalogue's rules (:func:`~telemetry_web.alerting._catalogue.alert_rules`).
        receivers: the receiver threads by name (``log`` included).
        health: the health checks' rows, or None (the health kinds then read the history).
        clock: wall-clock time (tests pass a manual one to :meth:`evaluate`).
    """

    def __init__(
        self,
        rules: Sequence[AlertRule],
        *,
        settings: AlertingSettings,
        store_path: str,
        lock_file: str,
        receivers: Mapping[str, ReceiverThread],
        retention: float,
        busy_timeout: float = 5.0,
        health: HealthRows | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = tuple(rules)
        self.settings = settings
        self.interval = settings.interval
        self.store = AlertStore(store_path, retention=retention, busy_timeout=busy_timeout)
        self.receivers = dict(receivers)
        self._lock = AlertLock(lock_file)
        self._health = health
        self._clock = clock
        self._reporter = _Reporter()
        self._started = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._working = ForkLock(after_in_child=self._after_fork)

    # --- thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the receivers and the evaluation thread (idempotent)."""
        if self._started:
            return
        self._started = True
        for receiver in self.receivers.values():
            receiver.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telemetry-alerting", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        self._lock.forget_after_fork()
        was_running = self._started and not self._stop.is_set()
        self._started = False
        if was_running:
            self.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(self.interval):
            self.tick()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop evaluating, give the lock up, and send what is queued within ``timeout``."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout / 2)
        with self._working:
            self._lock.release()
            self.store.close()
        for receiver in self.receivers.values():
            receiver.stop(max(0.0, deadline - time.monotonic()))

    @property
    def leading(self) -> bool:
        return self._lock.held

    # --- one round ----------------------------------------------------------------------------

    def tick(self) -> bool:
        """One round if this process holds (or can take) the lock; whether it evaluated."""
        with self._working:
            if not self._lock.try_take():
                return False
            try:
                notifications = self.evaluate(self._clock())
            except (sqlite3.Error, OSError) as exc:
                self.store.close()
                self._reporter.failed(self.store.path, describe(exc))
                return False
            except Exception as exc:  # a bug here must not end alerting for good
                self._reporter.failed(self.store.path, f"{type(exc).__name__}: {exc}")
                return False
        self.dispatch(notifications)
        return True

    def dispatch(self, notifications: Iterable[Notification]) -> None:
        for notification in notifications:
            receiver = self.receivers.get(notification.receiver)
            if receiver is not None:
                receiver.submit(notification)

    def evaluate(self, now: float) -> list[Notification]:
        """Evaluate every rule at ``now``, write the changes, return what to notify."""
        results = self._measure(now)
        active = self.store.active()
        upserts: list[AlertRecord] = []
        deletes: list[str] = []
        notify: list[AlertRecord] = []
        seen: set[str] = set()
        repeat = self.settings.repeat_interval
        for rule, groups in results:
            for labels, value in groups:
                record = self._instance(rule, labels, value, now)
                seen.add(record.fingerprint)
                old = active.get(record.fingerprint)
                active_at = old.active_at if old is not None else now
                if now - active_at >= rule.for_:
                    fired_at = old.fired_at if old is not None and old.fired_at else now
                    notified_at = old.notified_at if old is not None else None
                    due = notified_at is None or now - notified_at >= repeat
                    record = record.evolve(
                        state="firing", active_at=active_at, fired_at=fired_at,
                        notified_at=now if due else notified_at,
                    )  # fmt: skip
                    if due:
                        notify.append(record)
                else:
                    record = record.evolve(state="pending", active_at=active_at)
                upserts.append(record)
        for fp, old in active.items():
            if fp in seen:
                continue
            if old.state == "pending":
                deletes.append(fp)
                continue
            resolved = old.evolve(state="resolved", resolved_at=now, evaluated_at=now,
                                  notified_at=now)  # fmt: skip
            upserts.append(resolved)
            notify.append(resolved)
        self.store.apply(upserts, deletes, now=now)
        return self._group(notify)

    def _instance(
        self, rule: AlertRule, labels: dict[str, str], value: float, now: float
    ) -> AlertRecord:
        full = {"alertname": rule.name, **labels, **rule.labels}
        annotations = {
            "summary": rule.render(rule.summary, labels, value),
            "description": rule.render(rule.description, labels, value),
        }
        return AlertRecord(
            name=rule.name, labels=full, annotations=annotations, state="pending",
            value=value, active_at=now, evaluated_at=now,
        )  # fmt: skip

    def _group(self, alerts: list[AlertRecord]) -> list[Notification]:
        """One notification per receiver per rule (alerts of one rule go together)."""
        groups: dict[tuple[str, str], list[AlertRecord]] = defaultdict(list)
        s = self.settings
        for alert in alerts:
            for receiver in route(alert.labels, s.routes, s.default_receiver):
                groups[(receiver, alert.name)].append(alert)
        external = s.external_url or ""
        return [
            Notification(receiver, tuple(members), external)
            for (receiver, _name), members in sorted(groups.items())
        ]

    # --- measuring ----------------------------------------------------------------------------

    def _measure(self, now: float) -> list[tuple[AlertRule, list[tuple[dict[str, str], float]]]]:
        """For each rule, the groups whose condition holds and their values."""
        history: MetricHistory | None = None
        try:
            history = MetricHistory(self.store.path)
        except StoreError:
            history = None  # no snapshot yet: the metric kinds have nothing to say
        try:
            measured = []
            for rule in self.rules:
                values = self._values(rule.condition, history, now)
                holds = rule.condition.holds
                holding = [(lbl, v) for lbl, v in values if v is not None and holds(v)]
                measured.append((rule, holding))
            return measured
        finally:
            if history is not None:
                history.close()

    def _values(
        self, c: Condition, history: MetricHistory | None, now: float
    ) -> list[tuple[dict[str, str], float | None]]:
        if c.family == sc.HEALTH_CHECK_STATUS and self._health is not None:
            return _aggregate(c, [_Part(lbl, v, v) for lbl, v in self._health()], {})
        if history is None:
            return []
        try:
            # An instant value (window 0) is the latest within a few snapshots, as Prometheus
            # looks back for a sample; a series gone longer than that is stale.
            span = c.window or 3 * history.interval()
            parts = [_Part(w.labels, w.increase, w.latest)
                     for w in history.window(c.family, c.series, now - span, now)]  # fmt: skip
            known: dict[Group, dict[str, str]] = {}
            if c.aggregation == "count":  # a group seen in the last hour counts 0 when gone
                for w in history.window(c.family, c.series, now - max(span, 3600.0), now):
                    known.setdefault(_key(c, w.labels), _group_labels(c, w.labels))
        except StoreError:
            return []
        return _aggregate(c, parts, known)


class _Part:
    __slots__ = ("increase", "labels", "latest")

    def __init__(self, labels: dict[str, str], increase: float, latest: float | None) -> None:
        self.labels, self.increase, self.latest = labels, increase, latest


def _key(c: Condition, labels: Mapping[str, str]) -> Group:
    return tuple(labels.get(k, "") for k in c.by)


def _group_labels(c: Condition, labels: Mapping[str, str]) -> dict[str, str]:
    return {k: labels[k] for k in c.by if labels.get(k)}


def _aggregate(
    c: Condition, parts: Sequence[_Part], known: Mapping[Group, dict[str, str]]
) -> list[tuple[dict[str, str], float | None]]:
    """The condition's value per group of its ``by`` labels."""
    groups: dict[Group, list[_Part]] = defaultdict(list)
    names: dict[Group, dict[str, str]] = dict(known)
    for p in parts:
        if any(p.labels.get(k) not in allowed for k, allowed in c.match.items()):
            continue
        key = _key(c, p.labels)
        groups[key].append(p)
        names.setdefault(key, _group_labels(c, p.labels))
    values: list[tuple[dict[str, str], float | None]] = []
    for key in sorted(names):
        members = groups.get(key, [])
        values.append((names[key], _value(c, members)))
    return values


def _value(c: Condition, members: Sequence[_Part]) -> float | None:
    if c.aggregation == "error_ratio":
        return error_ratio(((p.labels, p.increase) for p in members), c.status_label)
    if c.aggregation == "quantile":
        buckets = bucket_counts((p.labels, p.increase) for p in members)
        return histogram_quantile(c.quantile or 0.5, buckets)
    if c.aggregation == "min":
        latest = [p.latest for p in members if p.latest is not None]
        return min(latest) if latest else None
    if c.aggregation == "increase":
        return sum(p.increase for p in members) if members else None
    return float(sum(1 for p in members if p.latest is not None))


def health_rows(health: Any, labels: Mapping[str, str]) -> HealthRows:
    """``health_check_status`` as this process's checks stand: 1 healthy, 0 unhealthy
    (pending checks are left out: nothing is known yet), with the Telemetry's constant labels
    and ``instance`` (the host name)."""
    instance = socket.gethostname()

    def rows() -> list[tuple[dict[str, str], float]]:
        found = []
        for name in health.names():
            try:
                status = health.snapshot(name).status
            except KeyError:  # removed meanwhile
                continue
            if status == "pending":
                continue
            row = {**labels, "instance": instance, sc.LABEL_CHECK: name}
            found.append((row, 1.0 if status == "healthy" else 0.0))
        return found

    return rows


def build_receivers(
    settings: AlertingSettings, *, log: Any = None, dropped: Any = None, **options: Any
) -> dict[str, ReceiverThread]:
    """A :class:`ReceiverThread` per configured receiver, and ``log`` unless one is named so."""
    found = {
        r.name: ReceiverThread(build_notifier(r, log), dropped=dropped, **options)
        for r in settings.receivers
    }
    if "log" not in found:
        found["log"] = ReceiverThread(LogNotifier("log", log), dropped=dropped, **options)
    return found


def embedded_alerting(
    settings: TelemetrySettings,
    *,
    metrics: Any,
    health: Any = None,
    log: Any = None,
    multiprocess_dir: str | None = None,
) -> AlertEvaluator | None:
    """The started evaluator of a Telemetry, or None: ``alerting.enabled`` false, the store
    off, or ``auto`` and the store keeps no metric history. ``metrics`` is its MetricSet (the
    drop counter, the constant labels), ``health`` its Health, ``log`` ``(level, event,
    **fields)`` for the ``log`` receiver."""
    from ..store import store_for_metrics

    alerting, store = settings.alerting, settings.store
    if alerting.enabled == "false" or store.enabled == "false":
        return None
    if alerting.enabled == "auto" and not store_for_metrics(settings):
        return None
    dropped = (
        metrics.builder("counter", sc.ALERT_NOTIFICATIONS_DROPPED)
        .with_description("Alert notifications not delivered, by receiver and reason.")
        .with_label_keys("receiver", "reason")
        .register()
    )
    labels = dict(metrics.constant_labels)
    evaluator = AlertEvaluator(
        alert_rules(settings),
        settings=alerting,
        store_path=store.path,
        lock_file=alert_lock_path(store.path, settings.service, multiprocess_dir),
        receivers=build_receivers(alerting, log=log, dropped=dropped),
        retention=store.retention,
        busy_timeout=store.busy_timeout,
        health=health_rows(health, labels) if health is not None else None,
    )
    evaluator.start()
    return evaluator
