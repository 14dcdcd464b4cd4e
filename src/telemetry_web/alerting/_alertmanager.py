"""An Alertmanager configuration routing the built-in alerts to the configured receivers
(``telemetry alertmanager-config``).

Receivers come from ``alerting.receivers`` (``webhook``, ``slack``, ``email``; a ``log``
receiver has no Alertmanager counterpart and receives nothing there) and ``alerting.routes``,
plus any ``--webhook URL`` given on the command line. Every receiver gets the resolved
notifications too (``send_resolved``), as the embedded notifiers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from .. import semconv as sc
from ..config import TelemetrySettings
from ._catalogue import duration_text

__all__ = ["Timing", "alertmanager_config", "alertmanager_yaml"]

_NOWHERE = "telemetry-web-none"  # the receiver of a configuration with none


@dataclass(frozen=True, kw_only=True)
class Timing:
    """Alertmanager's grouping delays, in seconds (its own defaults but repeat_interval)."""

    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float | None = None  # None: `alerting.repeat_interval`, else 4h


def _receiver(receiver: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": receiver.name}
    if receiver.type == "webhook":
        entry["webhook_configs"] = [{"url": receiver.url, "send_resolved": True}]
    elif receiver.type == "slack":
        entry["slack_configs"] = [{"api_url": receiver.url, "send_resolved": True}]
    elif receiver.type == "email":
        email: dict[str, Any] = {
            "to": ", ".join(receiver.to),
            "from": receiver.sender,
            "smarthost": f"{receiver.smtp_host}:{receiver.smtp_port}",
            "require_tls": bool(receiver.starttls),
            "send_resolved": True,
        }
        if receiver.username is not None:
            email["auth_username"] = receiver.username
            email["auth_password"] = receiver.password
        entry["email_configs"] = [email]
    return entry  # `log`: a receiver without configurations


def alertmanager_config(
    settings: TelemetrySettings, *, webhooks: Sequence[str] = (), timing: Timing | None = None
) -> dict[str, Any]:
    """The configuration as a mapping (see :func:`alertmanager_yaml`)."""
    timing = timing or Timing()
    alerting = settings.alerting
    receivers = [_receiver(r) for r in getattr(alerting, "receivers", ())]
    receivers += [
        {"name": f"webhook-{i}", "webhook_configs": [{"url": url, "send_resolved": True}]}
        for i, url in enumerate(webhooks, 1)
    ]
    default = getattr(alerting, "default_receiver", None)
    names = [r["name"] for r in receivers]
    if default not in names:
        default = names[0] if names else _NOWHERE
    if default == _NOWHERE:
        receivers.append({"name": _NOWHERE})
    repeat = timing.repeat_interval or getattr(alerting, "repeat_interval", None) or 4 * 3600.0
    route: dict[str, Any] = {
        "receiver": default,
        "group_by": ["alertname", sc.LABEL_SERVICE, sc.LABEL_ENVIRONMENT],
        "group_wait": duration_text(timing.group_wait),
        "group_interval": duration_text(timing.group_interval),
        "repeat_interval": duration_text(repeat),
    }
    routes = [
        {
            "receiver": r.receiver,
            "matchers": [f"{k}={_quote(v)}" for k, v in sorted(r.match.items())],
        }
        for r in getattr(alerting, "routes", ())
        if r.receiver in names
    ]
    # Every --webhook receives every alert, next to the configured routing.
    extra = [
        {"receiver": f"webhook-{i}", "continue": True}
        for i in range(1, len(webhooks) + 1)
        if f"webhook-{i}" != default
    ]
    if extra or routes:
        # A child route that matched keeps the alert from the root's receiver: end with it.
        route["routes"] = [*extra, *routes, {"receiver": default}]
    return {"route": route, "receivers": receivers}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def alertmanager_yaml(
    settings: TelemetrySettings, *, webhooks: Sequence[str] = (), timing: Timing | None = None
) -> str:
    """An ``alertmanager.yml`` for the receivers of ``settings`` (and ``webhooks``)."""
    body = yaml.safe_dump(
        alertmanager_config(settings, webhooks=webhooks, timing=timing),
        sort_keys=False,
        default_flow_style=False,
    )
    return (
        "# Alertmanager configuration for telemetry-web's alerts, written by\n"
        "# `telemetry alertmanager-config`; check with `amtool check-config`.\n" + body
    )
