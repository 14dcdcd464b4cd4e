"""Alert notifications: what they carry, the four receiver types, and the thread each receiver
sends from.

A :class:`Notification` is a group of alert instances of one rule for one receiver. Receivers
(``alerting.receivers``):

- ``webhook``: the Alertmanager webhook JSON (``version: "4"``, ``groupKey``, ``status``,
  ``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL``,
  ``alerts[{status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint}]``), so a
  receiver written for Alertmanager works unchanged;
- ``slack``: an incoming webhook, ``{"text": ..., "blocks": [...]}``;
- ``email``: SMTP with STARTTLS (unless ``starttls: false``) and auth when a username is given;
- ``log``: one line per alert through the Telemetry's log pipeline.

Each receiver sends from a :class:`ReceiverThread` of its own behind a bounded queue: the
evaluator only enqueues (a full queue drops, counted in
``telemetry_alert_notifications_dropped_total{receiver,reason}``). A failed send is retried
after a pause doubling from ``backoff`` to ``max_backoff``, up to ``attempts`` times, and
reported on stderr at most once per ``report_every`` (one line, with the failures since the
previous one).
"""

from __future__ import annotations

import json
import logging
import queue
import smtplib
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any, Literal, Protocol

from .. import semconv as sc
from .._forksafe import register_at_fork
from ..config._model import AlertReceiverSettings
from ..metrics.outputs._http import post, where
from ..metrics.outputs._push import ExportError
from ..store._alerts import AlertRecord

__all__ = [
    "NOTIFICATIONS_DROPPED",
    "Notification",
    "Notifier",
    "NotifyError",
    "ReceiverThread",
    "build_notifier",
    "slack_payload",
    "webhook_payload",
]

NOTIFICATIONS_DROPPED = sc.ALERT_NOTIFICATIONS_DROPPED
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing
_log = logging.getLogger("telemetry_web.alerting")


class NotifyError(Exception):
    """A notification was not delivered; the message is the cause, on one line."""


def rfc3339(epoch: float | None) -> str:
    if epoch is None:
        return ZERO_TIME
    moment = datetime.fromtimestamp(epoch, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Notification:
    """Alerts of one rule, sent together to one receiver."""

    receiver: str
    alerts: tuple[AlertRecord, ...]
    external_url: str = ""

    @property
    def status(self) -> Literal["firing", "resolved"]:
        return "firing" if any(a.state == "firing" for a in self.alerts) else "resolved"

    @property
    def group_labels(self) -> dict[str, str]:
        return {"alertname": self.alerts[0].name} if self.alerts else {}

    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])

    @property
    def title(self) -> str:
        """``[FIRING:1] HighErrorRatio``, as Alertmanager's default templates title it."""
        firing = sum(1 for a in self.alerts if a.state == "firing")
        count = f":{firing}" if self.status == "firing" else ""
        return f"[{self.status.upper()}{count}] {self.group_labels.get('alertname', '')}"


def _common(mappings: Sequence[dict[str, str]]) -> dict[str, str]:
    if not mappings:
        return {}
    first = mappings[0]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in mappings[1:])}


def _alert_status(record: AlertRecord) -> str:
    return "resolved" if record.state == "resolved" else "firing"


def webhook_payload(n: Notification) -> dict[str, Any]:
    """The Alertmanager webhook document (version 4) of a notification."""
    group = n.group_labels
    key = ",".join(f'{k}="{v}"' for k, v in sorted(group.items()))
    return {
        "version": "4",
        "groupKey": f"{{}}:{{{key}}}",
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": group,
        "commonLabels": n.common_labels(),
        "commonAnnotations": n.common_annotations(),
        "externalURL": n.external_url,
        "alerts": [
            {
                "status": _alert_status(a),
                "labels": dict(sorted(a.labels.items())),
                "annotations": dict(sorted(a.annotations.items())),
                "startsAt": rfc3339(a.fired_at if a.fired_at is not None else a.active_at),
                "endsAt": rfc3339(a.resolved_at if a.state == "resolved" else None),
                "generatorURL": n.external_url,
                "fingerprint": a.fingerprint,
            }
            for a in n.alerts
        ],
    }


def _alert_text(a: AlertRecord) -> str:
    summary = a.annotations.get("summary") or a.name
    labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k != "alertname")
    text = f"{summary} ({labels})" if labels else summary
    description = a.annotations.get("description")
    return f"{text}\n{description}" if description else text


def slack_payload(n: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: the title as ``text`` (shown in notifications), and a
    header block then one section per alert."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": n.title[:150]}}
    ]
    for a in n.alerts[:20]:  # Slack takes 50 blocks at most
        mark = ":white_check_mark:" if a.state == "resolved" else ":rotating_light:"
        blocks.append(
            {"type": "section",
             "text": {"type": "mrkdwn", "text": f"{mark} {_alert_text(a)}"[:3000]}}
        )  # fmt: skip
    return {"text": n.title, "blocks": blocks}


def email_message(n: Notification, sender: str, to: Sequence[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = n.title
    message["From"] = sender
    message["To"] = ", ".join(to)
    lines = [n.title, ""]
    for a in n.alerts:
        lines.append(f"- {_alert_status(a)}: {_alert_text(a)}")
        lines.append(f"  since {rfc3339(a.fired_at or a.active_at)}")
        if a.state == "resolved":
            lines.append(f"  resolved {rfc3339(a.resolved_at)}")
    if n.external_url:
        lines += ["", n.external_url]
    message.set_content("\n".join(lines) + "\n")
    return message


# --- receivers --------------------------------------------------------------------------------


class Notifier(Protocol):
    name: str

    def send(self, notification: Notification) -> None:
        """Deliver now (on the receiver's thread), or raise :class:`NotifyError`."""

    def describe(self) -> str:
        """Where it sends, for messages: ``webhook http://127.0.0.1:9/hook``."""


def _post_json(url: str, document: Any, headers: dict[str, str], timeout: float) -> None:
    body = json.dumps(document, separators=(",", ":")).encode()
    try:
        post(url, body, {"Content-Type": "application/json", **headers}, timeout)
    except ExportError as exc:
        raise NotifyError(f"{where(url)} answered {exc.cause}") from None
    except OSError as exc:
        raise NotifyError(f"{_cause(exc)} sending to {where(url)}") from None


def _cause(exc: BaseException) -> str:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, TimeoutError):
            return "timed out"
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        break
    text = str(exc) or type(exc).__name__
    return " ".join(text.split()).rstrip(".")


class WebhookNotifier:
    def __init__(self, name: str, url: str, headers: dict[str, str], timeout: float) -> None:
        self.name, self.url, self.headers, self.timeout = name, url, headers, timeout

    def send(self, notification: Notification) -> None:
        _post_json(self.url, webhook_payload(notification), self.headers, self.timeout)

    def describe(self) -> str:
        return f"webhook {where(self.url)}"


class SlackNotifier(WebhookNotifier):
    def send(self, notification: Notification) -> None:
        _post_json(self.url, slack_payload(notification), self.headers, self.timeout)

    def describe(self) -> str:
        return f"slack {where(self.url)}"


class EmailNotifier:
    def __init__(self, settings: AlertReceiverSettings) -> None:
        self.name = settings.name
        self.settings = settings

    def send(self, notification: Notification) -> None:
        s = self.settings
        message = email_message(notification, s.sender or "", s.to)
        try:
            with smtplib.SMTP(s.smtp_host or "", s.smtp_port, timeout=s.timeout) as smtp:
                smtp.ehlo()
                if s.starttls:
                    context = ssl.create_default_context(cafile=s.ca_file)
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if s.username is not None:
                    smtp.login(s.username, s.password or "")
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)  # fmt: skip
            raise NotifyError(f"{self._where()} answered {exc.smtp_code} {text}") from None
        except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise NotifyError(f"{_cause(exc)} sending to {self._where()}") from None

    def _where(self) -> str:
        return f"smtp://{self.settings.smtp_host}:{self.settings.smtp_port}"

    def describe(self) -> str:
        return f"email {self._where()}"


LogFunction = Callable[..., Any]  # (level, event, **fields)


class LogNotifier:
    """One log line per alert: ``Alert firing`` (warning) or ``Alert resolved`` (info)."""

    def __init__(self, name: str, log: LogFunction | None = None) -> None:
        self.name = name
        self._log = log or _stdlib_log

    def send(self, notification: Notification) -> None:
        for a in notification.alerts:
            firing = a.state != "resolved"
            self._log(
                "warning" if firing else "info",
                "Alert firing" if firing else "Alert resolved",
                alertname=a.name, labels=a.labels, annotations=a.annotations,
                value=a.value, starts_at=rfc3339(a.fired_at or a.active_at),
                fingerprint=a.fingerprint, receiver=notification.receiver,
            )  # fmt: skip

    def describe(self) -> str:
        return "log"


def _stdlib_log(level: str, event: str, **fields: Any) -> None:
    _log.log(logging.getLevelName(level.upper()), "%s %s", event, json.dumps(fields, default=str))


def build_notifier(settings: AlertReceiverSettings, log: LogFunction | None = None) -> Notifier:
    """The notifier of one configured receiver."""
    if settings.type == "webhook":
        return WebhookNotifier(settings.name, settings.url or "", settings.headers,
                               settings.timeout)  # fmt: skip
    if settings.type == "slack":
        return SlackNotifier(settings.name, settings.url or "", {}, settings.timeout)
    if settings.type == "email":
        return EmailNotifier(settings)
    return LogNotifier(settings.name, log)


# --- sending off the evaluator's thread -------------------------------------------------------


class _Reporter:
    """One ``Alert notification failed`` line per receiver per period."""

    def __init__(self, every: float) -> None:
        self.every = every
        self._last = float("-inf")
        self._failed = 0

    def failed(self, receiver: str, cause: str) -> None:
        self._failed += 1
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        failed, self._failed = self._failed, 0
        print(
            f"telemetry-web: Alert notification failed: {cause} (receiver {receiver}); "
            f"{failed} attempts failed since the last report, retrying with backoff; next "
            f"report in {self.every:g}s at the earliest",
            file=sys.stderr,
            flush=True,
        )


class ReceiverThread:
    """Sends one receiver's notifications from a daemon thread of its own.

    Args:
        notifier: the receiver.
        max_queue: notifications waiting at most; past it, new ones are dropped.
        dropped: the ``telemetry_alert_notifications_dropped_total`` metric, or None.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        max_queue: int = 100,
        attempts: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        report_every: float = 30.0,
        dropped: Any = None,
    ) -> None:
        self.notifier = notifier
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._max_queue = max_queue
        self._queue: queue.Queue[Notification | None] = queue.Queue(max_queue)
        self._dropped = dropped
        self._reporter = _Reporter(report_every)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()
        self._idle.set()
        register_at_fork(after_in_child=self._after_fork)

    @property
    def name(self) -> str:
        return self.notifier.name

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"telemetry-alerts-{self.name}", daemon=True
        )
        self._thread.start()

    def _after_fork(self) -> None:
        """A child has no thread and must not send what its parent queued."""
        self._queue = queue.Queue(self._max_queue)
        self._idle.set()
        running = self._thread is not None and not self._stop.is_set()
        self._thread = None
        if running:
            self.start()

    def submit(self, notification: Notification) -> bool:
        """Queue without waiting; False (and counted) when the queue is full."""
        if self._stop.is_set():
            self._count("shutdown")
            return False
        self._idle.clear()
        try:
            self._queue.put_nowait(notification)
        except queue.Full:
            self._count("queue_full")
            return False
        return True

    def _count(self, reason: str) -> None:
        if self._dropped is not None:
            self._dropped.labels(self.name, reason).inc()

    def _run(self) -> None:
        q, stop = self._queue, self._stop
        while True:
            try:
                item = q.get(timeout=0.5)
            except queue.Empty:
                if stop.is_set():
                    return
                self._idle.set()
                continue
            if item is None:
                return
            self._deliver(item, stop)
            if q.empty():
                self._idle.set()

    def _deliver(self, notification: Notification, stop: threading.Event) -> None:
        pause = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                self.notifier.send(notification)
                return
            except NotifyError as exc:
                self._reporter.failed(self.name, str(exc))
            except Exception as exc:  # a bug in a notifier must not stop the thread
                self._reporter.failed(self.name, f"{type(exc).__name__}: {exc}")
            if attempt == self.attempts or stop.wait(pause):
                break
            pause = min(self.max_backoff, pause * 2)
        self._count("failed" if not stop.is_set() else "shutdown")

    def wait_idle(self, timeout: float) -> bool:
        """Until everything queued was sent or given up (tests, flush)."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Send what is queued within ``timeout``; what is left is counted as dropped."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._idle.wait(timeout)
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        thread.join(max(0.0, timeout / 10))
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                left += 1
        for _ in range(left):
            self._count("shutdown")
