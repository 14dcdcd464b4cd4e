"""Embedded alerting end to end: a real Telemetry and TelemetryMiddleware under an error burst,
the store's metric history and alert state, a loopback webhook receiver and a real SMTP
server; one evaluator among several worker processes; the health-check rule."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.alerting import KINDS
from telemetry_web.store._alerts import read_alerts

from ._loopback import SmtpServer, WebhookReceiver, smtp, webhook

__all__ = ["smtp", "webhook"]  # fixtures

ROOT = Path(__file__).resolve().parents[2]
ERROR_LABELS = {"alertname": "TelemetryHighErrorRatio", "service": "orders",
                "environment": "test", "route": "/boom", "severity": "critical"}  # fmt: skip
ERROR_ANNOTATIONS = {
    "summary": "orders /boom: 100% of requests fail",
    "description": "More than 5% of the requests to /boom in orders (test) answered 5xx over "
    "the last 1s.",
}


def _only(kind: str, **rule: Any) -> dict[str, Any]:
    """``alerting.rules`` with one kind on (the others off, so nothing else fires)."""
    return {k: (rule if k == kind else False) for k in KINDS}


def _config(db: Path, alerting: dict[str, Any]) -> dict[str, Any]:
    return {
        "store": {"path": str(db)},
        "environment": "test",
        "logging": {"sinks": {"console": False}},
        "metrics": {"collectors": {"prometheus": {"scrape_interval": "200ms"}}},
        "alerting": {"interval": "200ms",
                     "rules": _only("error_ratio", **{"for": "500ms", "window": "1s"}),
                     **alerting},
    }  # fmt: skip


def _telemetry(db: Path, alerting: dict[str, Any]) -> Telemetry:
    return Telemetry(_config(db, alerting), service="orders", use_env=False, set_global=False,
                     capture_stdlib_logging=False)  # fmt: skip


async def _boom(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no", status_code=500)


def _app(telemetry: Telemetry) -> Any:
    return TelemetryMiddleware(Starlette(routes=[Route("/boom", _boom)]), telemetry=telemetry)


def _burst(telemetry: Telemetry, seconds: float) -> None:
    """/boom answers 500 every 20 ms for ``seconds``, through the middleware."""

    async def drive() -> None:
        transport = httpx.ASGITransport(app=_app(telemetry))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                assert (await client.get("/boom")).status_code == 500
                await asyncio.sleep(0.02)

    asyncio.run(drive())


def _statuses(received: list[Any]) -> list[str]:
    return [r.body["status"] for r in received]


def test_error_burst_fires_once_then_resolves(
    tmp_path: Path, webhook: WebhookReceiver, smtp: SmtpServer
) -> None:
    """An error burst longer than `for:` fires once (webhook and e-mail, same labels and
    annotations), and resolves once when the requests stop; nothing is sent twice."""
    db = tmp_path / "t.db"
    mail = {"name": "mail", "type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
            "sender": "alerts@example.com", "to": ["ops@example.com"], "username": "alerts",
            "password": "s3cret", "ca_file": str(smtp.cert)}  # fmt: skip
    t = _telemetry(db, {
        "receivers": [{"name": "hook", "type": "webhook", "url": webhook.url}, mail],
        "routes": [{"receiver": "hook"}, {"receiver": "mail",
                                          "match": {"alertname": "TelemetryHighErrorRatio"}}],
    })  # fmt: skip
    try:
        started = time.time()
        _burst(t, 1.5)
        received = webhook.wait_for(2, timeout=10)
        mails = smtp.wait_for(2, timeout=10)
        time.sleep(1.0)  # nothing more comes
        assert _statuses(webhook.received) == ["firing", "resolved"]
        assert len(smtp.mails) == 2
    finally:
        t.shutdown()
    firing, resolved = received
    assert firing.at - started >= 0.5  # pending for `for:` first
    for doc in (firing.body, resolved.body):
        assert doc["receiver"] == "hook"
        assert doc["commonLabels"] == ERROR_LABELS
        assert doc["commonAnnotations"]["description"] == ERROR_ANNOTATIONS["description"]
        (alert,) = doc["alerts"]
        assert alert["labels"] == ERROR_LABELS
        assert alert["fingerprint"] == firing.body["alerts"][0]["fingerprint"]
    assert firing.body["commonAnnotations"] == ERROR_ANNOTATIONS
    assert firing.body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved.body["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert [m.message["Subject"] for m in mails] == [
        "[FIRING:1] TelemetryHighErrorRatio",
        "[RESOLVED] TelemetryHighErrorRatio",
    ]
    assert all(m.tls and m.login == "alerts" for m in mails)
    (stored,) = read_alerts(db)
    assert (stored.state, stored.labels) == ("resolved", ERROR_LABELS)


def test_repeat_interval_sends_a_firing_alert_again(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    """While the burst goes on, the firing alert is sent again every repeat_interval (never
    sooner), with the same fingerprint and start; then resolved once."""
    t = _telemetry(tmp_path / "t.db", {
        "repeat_interval": "600ms", "default_receiver": "hook",
        "receivers": [{"name": "hook", "type": "webhook", "url": webhook.url}],
    })  # fmt: skip
    try:
        _burst(t, 2.6)
        deadline = time.monotonic() + 10
        while "resolved" not in _statuses(webhook.received) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        t.shutdown()
    statuses = _statuses(webhook.received)
    firing = [r for r in webhook.received if r.body["status"] == "firing"]
    assert statuses == ["firing"] * len(firing) + ["resolved"]
    assert len(firing) >= 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(firing)]
    assert all(gap >= 0.55 for gap in gaps), gaps
    assert len({r.body["alerts"][0]["fingerprint"] for r in webhook.received}) == 1
    assert len({r.body["alerts"][0]["startsAt"] for r in webhook.received}) == 1


def test_log_receiver_is_the_default(tmp_path: Path) -> None:
    """With no receiver configured, the alert is one warning line through the Telemetry's
    log pipeline, then one info line when it resolves."""
    log = tmp_path / "app.log"
    config = _config(tmp_path / "t.db", {})
    config["logging"] = {"sinks": {"console": False, "file": {"path": str(log)}}}
    t = Telemetry(config, service="orders", use_env=False, set_global=False,
                  capture_stdlib_logging=False)  # fmt: skip

    def alert_lines() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [line for line in lines if line.get("logger") == "telemetry_web.alerting"]

    try:
        _burst(t, 1.5)
        deadline = time.monotonic() + 10
        while len(alert_lines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        t.shutdown()
    firing, resolved = alert_lines()
    assert [(x["level"], x["event"]) for x in (firing, resolved)] == [
        ("warning", "Alert firing"),
        ("info", "Alert resolved"),
    ]
    assert firing["alertname"] == "TelemetryHighErrorRatio"
    assert firing["labels"] == ERROR_LABELS
    assert firing["annotations"] == ERROR_ANNOTATIONS
    assert firing["receiver"] == "log"


def test_alert_is_pending_until_for_has_passed(tmp_path: Path, webhook: WebhookReceiver) -> None:
    """With `for: 1m`, the burst leaves a pending alert in the store and sends nothing."""
    db = tmp_path / "t.db"
    t = _telemetry(db, {
        "rules": _only("error_ratio", **{"for": "1m", "window": "1s"}),
        "receivers": [{"name": "hook", "type": "webhook", "url": webhook.url}],
        "default_receiver": "hook",
    })  # fmt: skip
    try:
        _burst(t, 1.0)
        (alert,) = read_alerts(db)
    finally:
        t.shutdown()
    assert (alert.state, alert.labels, alert.fired_at) == ("pending", ERROR_LABELS, None)
    assert webhook.received == []


def test_failing_health_check_fires_the_health_check_rule(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    """A check failing past its threshold fires TelemetryHealthCheckFailing with its name;
    once it passes again the alert resolves."""
    t = Telemetry(
        {**_config(tmp_path / "t.db", {
            "rules": _only("health_check", **{"for": "500ms"}), "default_receiver": "hook",
            "receivers": [{"name": "hook", "type": "webhook", "url": webhook.url}]})},
        service="orders", use_env=False, set_global=False, capture_stdlib_logging=False,
    )  # fmt: skip
    up = [False]
    t.add_health_check("payments", lambda: up[0], interval=0.1, unhealthy_threshold=2)
    t.start_health_checks(thread=True)
    try:
        (firing,) = webhook.wait_for(1, timeout=10)
        up[0] = True
        received = webhook.wait_for(2, timeout=10)
    finally:
        t.shutdown()
    assert _statuses(received) == ["firing", "resolved"]
    (alert,) = firing.body["alerts"]
    assert alert["labels"] == {"alertname": "TelemetryHealthCheckFailing", "check": "payments",
                               "environment": "test", "service": "orders",
                               "severity": "warning"}  # fmt: skip
    assert alert["annotations"] == {
        "summary": "orders: health check payments failing",
        "description": "The health check payments of orders (test) has failed past its "
        "unhealthy_threshold.",
    }


_WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    sys.path.insert(0, os.getcwd())
    from tests.alerting.test_embedded import _burst, _telemetry
    from pathlib import Path

    db, done_dir, me, url = sys.argv[1:5]
    t = _telemetry(Path(db), {"default_receiver": "hook",
                              "receivers": [{"name": "hook", "type": "webhook", "url": url}]})
    _burst(t, 1.5)
    open(os.path.join(done_dir, me), "w").close()
    while len(os.listdir(done_dir)) < 2:
        time.sleep(0.05)
    time.sleep(3.0)  # the burst's window passes: resolved
    t.shutdown()
    """
)


@pytest.mark.server
def test_two_worker_processes_notify_once(tmp_path: Path, webhook: WebhookReceiver) -> None:
    """Two workers sharing PROMETHEUS_MULTIPROC_DIR, both configured to alert: one evaluates
    (the store's lock), so the burst they serve together is notified exactly once, firing
    then resolved."""
    mp_dir, done = tmp_path / "mp", tmp_path / "done"
    mp_dir.mkdir()
    done.mkdir()
    db = tmp_path / "t.db"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mp_dir)}
    env.pop("TELEMETRY_CONFIG", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db), str(done), f"w{i}", webhook.url],
            cwd=ROOT,
            env=env,
        )
        for i in range(2)
    ]
    assert [p.wait(60) for p in procs] == [0, 0]
    assert _statuses(webhook.received) == ["firing", "resolved"]
    assert webhook.received[0].body["alerts"][0]["labels"] == ERROR_LABELS
    (stored,) = read_alerts(db)
    assert stored.state == "resolved"
