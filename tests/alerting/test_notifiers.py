"""The receivers of embedded alerting against real loopback peers: the Alertmanager webhook
document, Slack's message, e-mail over STARTTLS with AUTH (aiosmtpd), the log line; retries,
one report per period, and a bounded queue that never blocks."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from telemetry_web.alerting._notifiers import (
    EmailNotifier,
    LogNotifier,
    Notification,
    NotifyError,
    ReceiverThread,
    SlackNotifier,
    WebhookNotifier,
)
from telemetry_web.config._model import AlertReceiverSettings
from telemetry_web.store._alerts import AlertRecord

from ._loopback import SmtpServer, WebhookReceiver, refused_url, smtp, webhook

__all__ = ["smtp", "webhook"]  # fixtures

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
LABELS = {"alertname": "TelemetryHighErrorRatio", "service": "orders",
          "environment": "prod", "route": "/boom", "severity": "critical"}  # fmt: skip
ANNOTATIONS = {"summary": "orders /boom: 100% of requests fail",
               "description": "More than 5% of the requests to /boom failed."}  # fmt: skip


def _firing(**changes: object) -> AlertRecord:
    record = AlertRecord(
        name="TelemetryHighErrorRatio", labels=LABELS, annotations=ANNOTATIONS, state="firing",
        value=1.0, active_at=T0 - 30, fired_at=T0, evaluated_at=T0, notified_at=T0,
    )  # fmt: skip
    return record.evolve(**changes) if changes else record


def _notification(*alerts: AlertRecord, receiver: str = "hook") -> Notification:
    return Notification(receiver, alerts or (_firing(),), "http://telemetry.example:8000")


def _dropped() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    counter = Counter("telemetry_alert_notifications_dropped", "Dropped.",
                      ["receiver", "reason"], registry=registry)  # fmt: skip
    return registry, counter


def _drops(registry: CollectorRegistry, receiver: str, reason: str) -> float:
    value = registry.get_sample_value(
        "telemetry_alert_notifications_dropped_total", {"receiver": receiver, "reason": reason}
    )
    return value or 0.0


def test_webhook_posts_the_alertmanager_document(webhook: WebhookReceiver) -> None:
    """A firing then a resolved alert arrive as Alertmanager's webhook JSON (version 4)."""
    notifier = WebhookNotifier("hook", webhook.url, {"X-Token": "t"}, 5.0)
    notifier.send(_notification())
    notifier.send(_notification(_firing(state="resolved", resolved_at=T0 + 90)))
    first, second = webhook.wait_for(2)
    assert first.path == "/hook"
    assert first.body == {
        "version": "4",
        "groupKey": '{}:{alertname="TelemetryHighErrorRatio"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "hook",
        "groupLabels": {"alertname": "TelemetryHighErrorRatio"},
        "commonLabels": LABELS,
        "commonAnnotations": ANNOTATIONS,
        "externalURL": "http://telemetry.example:8000",
        "alerts": [
            {
                "status": "firing",
                "labels": LABELS,
                "annotations": ANNOTATIONS,
                "startsAt": "2027-01-15T08:00:00.000Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://telemetry.example:8000",
                "fingerprint": "4556be1f2ae0147f",  # FNV-1a as Alertmanager computes it
            }
        ],
    }
    assert second.body["status"] == "resolved"
    assert second.body["alerts"][0]["status"] == "resolved"
    assert second.body["alerts"][0]["endsAt"] == "2027-01-15T08:01:30.000Z"


def test_common_labels_are_those_every_alert_shares(webhook: WebhookReceiver) -> None:
    """Two routes' alerts in one notification: commonLabels leaves out the route."""
    other = _firing(labels={**LABELS, "route": "/other"})
    WebhookNotifier("hook", webhook.url, {}, 5.0).send(_notification(_firing(), other))
    (got,) = webhook.wait_for(1)
    assert got.body["commonLabels"] == {k: v for k, v in LABELS.items() if k != "route"}
    assert [a["labels"]["route"] for a in got.body["alerts"]] == ["/boom", "/other"]
    assert got.body["alerts"][1]["fingerprint"] != got.body["alerts"][0]["fingerprint"]


def test_slack_incoming_webhook_gets_text_and_blocks(webhook: WebhookReceiver) -> None:
    """Slack's message: the title as text, a header block and a section per alert."""
    SlackNotifier("chat", webhook.url, {}, 5.0).send(_notification(receiver="chat"))
    (got,) = webhook.wait_for(1)
    assert got.body == {
        "text": "[FIRING:1] TelemetryHighErrorRatio",
        "blocks": [
            {"type": "header",
             "text": {"type": "plain_text", "text": "[FIRING:1] TelemetryHighErrorRatio"}},
            {"type": "section",
             "text": {"type": "mrkdwn",
                      "text": ":rotating_light: orders /boom: 100% of requests fail "
                              "(environment=prod, route=/boom, service=orders, "
                              "severity=critical)\nMore than 5% of the requests to /boom "
                              "failed."}},
        ],
    }  # fmt: skip


def _email(smtp: SmtpServer, **changes: object) -> EmailNotifier:
    settings = {
        "name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
        "sender": "alerts@example.com", "to": ("ops@example.com", "dev@example.com"),
        "username": "alerts", "password": "s3cret", "ca_file": str(smtp.cert), "timeout": 5.0,
        **changes,
    }  # fmt: skip
    return EmailNotifier(AlertReceiverSettings(**settings))  # type: ignore[arg-type]


def test_email_over_starttls_with_auth(smtp: SmtpServer) -> None:
    """The mail goes over STARTTLS (the server's self-signed certificate trusted through
    ca_file), authenticated, to every recipient, with the title as subject."""
    _email(smtp).send(_notification(receiver="mail"))
    (mail,) = smtp.wait_for(1)
    assert mail.tls is True
    assert mail.login == "alerts"
    assert mail.sender == "alerts@example.com"
    assert mail.recipients == ["ops@example.com", "dev@example.com"]
    assert mail.message["Subject"] == "[FIRING:1] TelemetryHighErrorRatio"
    assert mail.message["To"] == "ops@example.com, dev@example.com"
    body = mail.message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert body.decode().replace("\r\n", "\n") == (
        "[FIRING:1] TelemetryHighErrorRatio\n"
        "\n"
        "- firing: orders /boom: 100% of requests fail (environment=prod, route=/boom, "
        "service=orders, severity=critical)\n"
        "More than 5% of the requests to /boom failed.\n"
        "  since 2027-01-15T08:00:00.000Z\n"
        "\n"
        "http://telemetry.example:8000\n"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"password": "wrong"}, r"smtp://127\.0\.0\.1:\d+ answered 535 5\.7\.8 Authentication "
                                r"credentials invalid"),
        ({"ca_file": None}, r"\[SSL: CERTIFICATE_VERIFY_FAILED\] certificate verify failed: "
                            r"self.signed certificate .* sending to smtp://127\.0\.0\.1:\d+"),
        ({"starttls": False}, r"SMTP AUTH extension not supported by server sending to "
                              r"smtp://127\.0\.0\.1:\d+"),
    ],
)  # fmt: skip
def test_email_failures_are_one_line(
    smtp: SmtpServer, changes: dict[str, object], expected: str
) -> None:
    """A wrong password, an untrusted certificate, no STARTTLS: one line saying why."""
    with pytest.raises(NotifyError) as info:
        _email(smtp, **changes).send(_notification(receiver="mail"))
    assert re.fullmatch(expected, str(info.value)), str(info.value)
    assert smtp.mails == []


def test_log_receiver_writes_one_line_per_alert(caplog: pytest.LogCaptureFixture) -> None:
    """Without a Telemetry logger the log receiver writes through logging, one record per
    alert: a warning while firing, info once resolved."""
    caplog.set_level(logging.INFO, logger="telemetry_web.alerting")
    notifier = LogNotifier("log")
    notifier.send(_notification(receiver="log"))
    notifier.send(_notification(_firing(state="resolved", resolved_at=T0 + 1), receiver="log"))
    assert [(r.levelname, r.getMessage()[:32]) for r in caplog.records] == [
        ("WARNING", 'Alert firing {"alertname": "Tele'),
        ("INFO", 'Alert resolved {"alertname": "Te'),
    ]
    assert '"route": "/boom"' in caplog.records[0].getMessage()


def test_refused_receiver_is_retried_with_backoff_and_reported_once(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Nothing listening: each notification is tried ``attempts`` times with growing pauses,
    one stderr line covers the whole period, and the given-up ones are counted."""
    registry, counter = _dropped()
    url = refused_url()
    thread = ReceiverThread(
        WebhookNotifier("hook", url, {}, 2.0), attempts=3, backoff=0.05, max_backoff=0.1,
        report_every=60.0, dropped=counter,
    )  # fmt: skip
    thread.start()
    started = time.monotonic()
    assert thread.submit(_notification())
    assert thread.submit(_notification())
    assert thread.wait_idle(10.0)
    took = time.monotonic() - started
    thread.stop(1.0)
    assert took >= 2 * (0.05 + 0.1)  # two pauses per notification
    assert _drops(registry, "hook", "failed") == 2
    lines = capfd.readouterr().err.splitlines()
    assert lines == [
        f"telemetry-web: Alert notification failed: connection refused sending to {url} "
        "(receiver hook); 1 attempts failed since the last report, retrying with backoff; "
        "next report in 60s at the earliest"
    ]


def test_500_is_retried_until_delivered_and_reported_per_period(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Two 500s then a 200: delivered once on the third attempt; with a short period the
    second line counts the failures since the first."""
    receiver = WebhookReceiver(statuses=(500, 500, 500))
    try:
        registry, counter = _dropped()
        thread = ReceiverThread(
            WebhookNotifier("hook", receiver.url, {}, 2.0), attempts=5, backoff=0.2,
            max_backoff=0.2, report_every=0.3, dropped=counter,
        )  # fmt: skip
        thread.start()
        assert thread.submit(_notification())
        assert len(receiver.wait_for(1)) == 1
        thread.stop(1.0)
        assert receiver.attempts == 4
        assert _drops(registry, "hook", "failed") == 0
    finally:
        receiver.close()
    lines = capfd.readouterr().err.splitlines()
    prefix = (
        f"telemetry-web: Alert notification failed: {receiver.url} answered HTTP 500 (ok) "
        "(receiver hook); "
    )
    suffix = " since the last report, retrying with backoff; next report in 0.3s at the earliest"
    assert lines == [f"{prefix}1 attempts failed{suffix}", f"{prefix}2 attempts failed{suffix}"]


@pytest.fixture
def hanging() -> Iterator[tuple[str, threading.Event]]:
    """A loopback server that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    seen = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            seen.set()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook", seen
    server.close()
    for conn in held:
        conn.close()


def test_a_hanging_receiver_never_blocks_submit(hanging: tuple[str, threading.Event]) -> None:
    """While one send hangs, submits return at once: two wait (max_queue 2), the rest are
    dropped as queue_full, and what is still queued at stop is counted as shutdown."""
    url, seen = hanging
    registry, counter = _dropped()
    thread = ReceiverThread(WebhookNotifier("hook", url, {}, 3.0), max_queue=2, attempts=1,
                            dropped=counter)  # fmt: skip
    thread.start()
    assert thread.submit(_notification())
    assert seen.wait(5.0)  # the first one is in flight
    started = time.monotonic()
    accepted = [thread.submit(_notification()) for _ in range(4)]
    assert time.monotonic() - started < 0.05
    assert accepted == [True, True, False, False]
    thread.stop(0.2)
    assert _drops(registry, "hook", "queue_full") == 2
    assert _drops(registry, "hook", "shutdown") == 2


def test_email_receiver_setting_reaches_the_server(tmp_path: Path, smtp: SmtpServer) -> None:
    """``starttls`` and ``ca_file`` are read from the configuration model as parsed."""
    from telemetry_web.config import parse_section
    from telemetry_web.config._model import AlertingSettings

    parsed = parse_section(
        AlertingSettings,
        {"receivers": [{"name": "mail", "type": "email", "smtp_host": "127.0.0.1",
                        "smtp_port": smtp.port, "sender": "a@example.com",
                        "to": ["b@example.com"], "username": "alerts", "password": "s3cret",
                        "ca_file": str(smtp.cert)}]},
        path="alerting",
    )  # fmt: skip
    EmailNotifier(parsed.receivers[0]).send(_notification(receiver="mail"))
    (mail,) = smtp.wait_for(1)
    assert (mail.tls, mail.login, mail.recipients) == (True, "alerts", ["b@example.com"])


HOOK = {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}


@pytest.mark.parametrize(
    ("alerting", "problem"),
    [
        ({"receivers": [{"name": "hook", "type": "webhook"}]},
         "alerting.receivers[0].url: required for type 'webhook'"),
        ({"receivers": [{**HOOK, "url": "ftp://x/hook"}]},
         "alerting.receivers[0].url: expected an http:// or https:// URL, got 'ftp://x/hook'"),
        ({"receivers": [{"name": "mail", "type": "email", "smtp_host": "h", "sender": "a@b"}]},
         "alerting.receivers[0].to: expected at least one address for type 'email'"),
        ({"receivers": [{"name": "mail", "type": "email", "smtp_host": "h", "sender": "a@b",
                         "to": ["c@d"], "username": "u"}]},
         "alerting.receivers[0].password: expected username and password together"),
        ({"receivers": [{**HOOK, "smtp_host": "h"}]},
         "alerting.receivers[0].smtp_host: not used by type 'webhook' (used by 'email')"),
        ({"receivers": [{**HOOK, "headers": {"Authorization": ["Bearer t0k"]}}]},
         "alerting.receivers[0].headers.Authorization: expected a string, got '***'"),
        ({"receivers": [HOOK, HOOK]},
         "alerting.receivers[1].name: expected a name used once, got 'hook' again"),
        ({"receivers": [HOOK], "routes": [{"receiver": "pager"}]},
         "alerting.routes[0].receiver: expected one of 'hook', 'log', got 'pager'"),
        ({"default_receiver": "pager"},
         "alerting.default_receiver: expected one of 'log', got 'pager'"),
        ({"interval": "soon"},
         "alerting.interval: expected a positive duration such as '500ms' or '10s', got 'soon'"),
        ({"receivers": [{"name": "a b", "type": "log"}]},
         "alerting.receivers[0].name: expected a name of letters, digits, '_', '-', '.', "
         "got 'a b'"),
    ],
)  # fmt: skip
def test_invalid_alerting_configuration_names_the_key(
    alerting: dict[str, object], problem: str
) -> None:
    """Each mistake in `alerting` is a ConfigError naming the key path, value and expectation
    (secrets shown as '***')."""
    from telemetry_web.config import parse_settings
    from telemetry_web.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_settings({"alerting": alerting})
    assert info.value.problems == [problem]
