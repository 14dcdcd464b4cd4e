"""``telemetry alerts list`` and ``telemetry alerts test``: embedded alerting's alerts, as the
store keeps them, and a test notification to one receiver.

::

    telemetry alerts list                        # firing, then pending, then resolved (24h)
    telemetry alerts list --state firing --json
    telemetry alerts test ops-webhook            # exit 0, or 1 with a one-line error
"""

from __future__ import annotations

import time

import click

from ..alerting._notifiers import LogNotifier, Notification, NotifyError, build_notifier
from ..config import load_settings
from ..errors import ConfigError
from ..store._alerts import STATES, AlertRecord, read_alerts
from ._common import DURATION
from ._output import CliError, default_store_path, emit_json, format_time, json_option, store_option
from ._output import table as print_table

__all__ = ["alerts"]

_COLOURS = {"firing": "red", "pending": "yellow", "resolved": "green"}


@click.group()
def alerts() -> None:
    """Embedded alerting: the alerts in the store, and test notifications."""


@alerts.command("list")
@click.option(
    "--state", "states", multiple=True, type=click.Choice(STATES),
    help="Only these states (repeat); default: all.",
)  # fmt: skip
@click.option(
    "--since", type=DURATION, default="24h", show_default=True,
    help="Resolved alerts that resolved within this long.",
)  # fmt: skip
@store_option
@json_option
def list_(states: tuple[str, ...], since: float, store_path: str | None, as_json: bool) -> None:
    """Firing, pending and resolved alerts: state, name, when it started (fired, or went
    pending) and ended, its labels and summary."""
    found = read_alerts(
        store_path or default_store_path(), states=states or STATES, since=time.time() - since
    )
    if as_json:
        emit_json([a.to_json() for a in found])
        return
    if not found:
        click.echo("No alerts.")
        return
    print_table(
        ["STATE", "ALERT", "STARTED", "ENDED", "LABELS", "SUMMARY"],
        [_cells(a) for a in found],
    )


def _cells(a: AlertRecord) -> list[str | tuple[str, dict[str, str]]]:
    started = a.fired_at if a.fired_at is not None else a.active_at
    ended = format_time(a.resolved_at) if a.resolved_at is not None else "-"
    labels = " ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k != "alertname")
    return [
        (a.state, {"fg": _COLOURS[a.state]}),
        a.name,
        format_time(started),
        ended,
        labels,
        a.annotations.get("summary", ""),
    ]


@alerts.command("test")
@click.argument("receiver")
@click.option(
    "--config", "config_path", metavar="FILE", default=None,
    help="The configuration file (default: $TELEMETRY_CONFIG).",
)  # fmt: skip
def test(receiver: str, config_path: str | None) -> None:
    """Send a test notification (a firing alert named TelemetryTest) to RECEIVER of
    alerting.receivers ('log' is always there)."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    configured = {r.name: r for r in settings.alerting.receivers}
    if receiver in configured:
        notifier = build_notifier(configured[receiver])
    elif receiver == "log":
        notifier = LogNotifier("log", _echo_log)
    else:
        names = ", ".join(sorted({*configured, "log"}))
        raise CliError(f"no receiver named {receiver!r} in alerting.receivers (there are: {names})")
    now = time.time()
    labels = {"alertname": "TelemetryTest", "service": settings.service,
              "environment": settings.environment, "severity": "none"}  # fmt: skip
    record = AlertRecord(
        name="TelemetryTest", labels=labels, state="firing", active_at=now, fired_at=now,
        evaluated_at=now,
        annotations={"summary": f"Test notification from telemetry-web ({settings.service})",
                     "description": "Sent by `telemetry alerts test`; nothing is wrong."},
    )  # fmt: skip
    notification = Notification(receiver, (record,), settings.alerting.external_url or "")
    try:
        notifier.send(notification)
    except NotifyError as exc:
        raise CliError(f"receiver {receiver}: {exc}") from None
    click.echo(f"Sent a test notification to {receiver} ({notifier.describe()}).")


def _echo_log(level: str, event: str, **fields: object) -> None:
    labels = fields.get("labels")
    click.echo(f"{level}: {event} {fields.get('alertname')} {labels}", err=True)
