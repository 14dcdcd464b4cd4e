"""``telemetry alerts list`` and ``telemetry alerts test``: exact output from a store holding
firing, pending and resolved alerts, and test notifications to a real loopback receiver."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from telemetry_web.cli import main
from telemetry_web.store._alerts import AlertRecord, AlertStore

from ..alerting._loopback import WebhookReceiver, refused_url, webhook

__all__ = ["webhook"]  # fixture

T0 = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Times print in local time: UTC here, so the expected text is fixed."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _record(name: str, route: str, state: str, **times: float) -> AlertRecord:
    labels = {"alertname": name, "service": "orders", "route": route, "severity": "critical"}
    return AlertRecord(
        name=name, labels=labels, annotations={"summary": f"orders {route}: failing"},
        state=state, value=0.5, evaluated_at=T0 + 300, **times,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with one alert in each state (resolved one resolved recently enough)."""
    db = tmp_path / "t.db"
    writer = AlertStore(str(db), retention=10 * 365 * 86400.0)
    now = time.time()
    writer.apply([
        _record("TelemetryHighErrorRatio", "/old", "resolved", active_at=T0 - 60, fired_at=T0,
                resolved_at=T0 + 120, notified_at=T0 + 120),
        _record("TelemetryHighErrorRatio", "/boom", "firing", active_at=T0 + 200,
                fired_at=T0 + 230, notified_at=T0 + 230),
        _record("TelemetryHighLatencyP95", "/slow", "pending", active_at=T0 + 290),
    ], now=now)  # fmt: skip
    writer.close()
    return db


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_firing_pending_then_resolved(store: Path) -> None:
    """Firing first, then pending, then resolved, each with its times, labels and summary."""
    code, out, err = _run("alerts", "list", "--store", str(store), "--since", "3650d")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "STATE     ALERT                    STARTED                  ENDED                    "
        "LABELS                                        SUMMARY",
        "firing    TelemetryHighErrorRatio  2025-06-15 15:10:30.000  -                        "
        "route=/boom service=orders severity=critical  orders /boom: failing",
        "pending   TelemetryHighLatencyP95  2025-06-15 15:11:30.000  -                        "
        "route=/slow service=orders severity=critical  orders /slow: failing",
        "resolved  TelemetryHighErrorRatio  2025-06-15 15:06:40.000  2025-06-15 15:08:40.000  "
        "route=/old service=orders severity=critical   orders /old: failing",
    ]


def test_list_filters_by_state_and_leaves_old_resolved_out(store: Path) -> None:
    """--state keeps the states asked for; resolved alerts older than --since are left out."""
    code, out, _ = _run("alerts", "list", "--store", str(store), "--state", "firing")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["STATE", "firing"]
    code, out, _ = _run("alerts", "list", "--store", str(store))  # --since 24h
    assert [line.split()[0] for line in out.splitlines()] == ["STATE", "firing", "pending"]


def test_list_json(store: Path) -> None:
    """--json: one document, every field of each alert."""
    code, out, _ = _run("alerts", "list", "--store", str(store), "--state", "firing", "--json")
    assert code == 0
    assert json.loads(out) == [
        {
            "name": "TelemetryHighErrorRatio",
            "state": "firing",
            "labels": {"alertname": "TelemetryHighErrorRatio", "route": "/boom",
                       "service": "orders", "severity": "critical"},
            "annotations": {"summary": "orders /boom: failing"},
            "value": 0.5,
            "active_at": T0 + 200,
            "fired_at": T0 + 230,
            "resolved_at": None,
            "notified_at": T0 + 230,
            "evaluated_at": T0 + 300,
            "fingerprint": "ba69d3afcbc5ea1f",
        }
    ]  # fmt: skip


def test_list_without_alerts_and_without_store(tmp_path: Path, store: Path) -> None:
    """A store with no alerts says so; a missing store is a one-line error, exit 1."""
    code, out, _ = _run("alerts", "list", "--store", str(store), "--state", "resolved")
    assert (code, out) == (0, "No alerts.\n")
    missing = tmp_path / "nope.db"
    code, out, err = _run("alerts", "list", "--store", str(missing))
    assert (code, out) == (1, "")
    assert err == (
        f"telemetry: error: no telemetry store at {missing}: run the app with the store "
        "enabled first, or point --store (or TELEMETRY_STORE__PATH) at it\n"
    )


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "telemetry.yaml"
    path.write_text(yaml.safe_dump({
        "service": "orders",
        "alerting": {"receivers": [{"name": "hook", "type": "webhook", "url": url}]},
    }))  # fmt: skip
    return path


def test_test_sends_one_notification(tmp_path: Path, webhook: WebhookReceiver) -> None:
    """`alerts test hook` posts one firing TelemetryTest alert and says where, exit 0."""
    config = str(_config(tmp_path, webhook.url))
    code, out, err = _run("alerts", "test", "hook", "--config", config)
    assert (code, err) == (0, "")
    assert out == f"Sent a test notification to hook (webhook {webhook.url}).\n"
    (got,) = webhook.wait_for(1)
    assert got.body["status"] == "firing"
    assert got.body["receiver"] == "hook"
    assert got.body["alerts"][0]["labels"] == {
        "alertname": "TelemetryTest", "service": "orders", "environment": "development",
        "severity": "none",
    }  # fmt: skip


def test_test_failures_are_one_line(tmp_path: Path) -> None:
    """A refused receiver and an unknown name: one line on stderr, exit 1."""
    url = refused_url()
    config = str(_config(tmp_path, url))
    code, out, err = _run("alerts", "test", "hook", "--config", config)
    assert (code, out) == (1, "")
    assert err == f"telemetry: error: receiver hook: connection refused sending to {url}\n"
    code, out, err = _run("alerts", "test", "pager", "--config", config)
    assert (code, out) == (1, "")
    names = "(there are: hook, log)"
    assert err == f"telemetry: error: no receiver named 'pager' in alerting.receivers {names}\n"
