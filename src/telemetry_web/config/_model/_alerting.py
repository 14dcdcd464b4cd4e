"""The ``alerting:`` section: built-in alert rules, receivers and routes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ._fields import PORT, POSITIVE_DURATION, PUSH_DURATION, _http_url, _meta, _positive

# --- alert rules (alerting.rules; telemetry_web.alerting holds the catalogue) -----------------

# `for` is a Python keyword: the field is `for_`, its configuration key `for`.
_FOR = {
    **_meta(unit="duration", check=lambda v: v >= 0, expect="a duration such as '5m' or 0"),
    "key": "for",
}
_RULE_WINDOW = _meta(unit="duration", check=_positive, expect="a positive duration such as '5m'")


@dataclass(frozen=True, kw_only=True)
class AlertRuleSettings:
    """One built-in alert: ``enabled``, how long the condition must hold (``for``), the window
    rates and quantiles are computed over, and the ``severity`` label. ``None``: the
    catalogue's default for this kind (``telemetry_web.alerting``)."""

    enabled: bool = True
    for_: float | None = field(default=None, metadata=_FOR)
    window: float | None = field(default=None, metadata=_RULE_WINDOW)
    severity: str | None = field(
        default=None,
        metadata=_meta(check=lambda v: bool(v.strip()), expect="a severity such as 'critical'"),
    )


@dataclass(frozen=True, kw_only=True)
class RatioAlertRuleSettings(AlertRuleSettings):
    threshold: float | None = field(
        default=None,
        metadata=_meta(check=lambda v: 0 <= v <= 1, expect="a ratio from 0 to 1 such as 0.05"),
    )


@dataclass(frozen=True, kw_only=True)
class LatencyAlertRuleSettings(AlertRuleSettings):
    threshold: float | None = field(
        default=None,
        metadata=_meta(unit="duration", check=_positive, expect="a latency such as '500ms'"),
    )


@dataclass(frozen=True, kw_only=True)
class CountAlertRuleSettings(AlertRuleSettings):
    threshold: float | None = field(
        default=None,
        metadata=_meta(check=lambda v: v >= 0, expect="a number of at least 0"),
    )


@dataclass(frozen=True, kw_only=True)
class AlertRulesSettings:
    """``alerting.rules``: the built-in alerts by kind; ``kind: false`` switches one off."""

    error_ratio: RatioAlertRuleSettings | None = field(default_factory=RatioAlertRuleSettings)
    latency_p95: LatencyAlertRuleSettings | None = field(default_factory=LatencyAlertRuleSettings)
    latency_p99: LatencyAlertRuleSettings | None = field(default_factory=LatencyAlertRuleSettings)
    readiness: AlertRuleSettings | None = field(default_factory=AlertRuleSettings)
    health_check: AlertRuleSettings | None = field(default_factory=AlertRuleSettings)
    spans_dropped: CountAlertRuleSettings | None = field(default_factory=CountAlertRuleSettings)
    logs_dropped: CountAlertRuleSettings | None = field(default_factory=CountAlertRuleSettings)
    metrics_dropped: CountAlertRuleSettings | None = field(default_factory=CountAlertRuleSettings)
    # threshold: the fewest live workers that is not an alert (default 1: none left).
    workers: CountAlertRuleSettings | None = field(default_factory=CountAlertRuleSettings)


# --- alerting ---------------------------------------------------------------------------------


def _receiver_name(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_.\-]+", value) is not None


@dataclass(frozen=True, kw_only=True)
class AlertReceiverSettings:
    """Where embedded alerting sends notifications: ``webhook`` (the Alertmanager webhook JSON
    to ``url``), ``slack`` (an incoming-webhook ``url``), ``email`` (SMTP to ``to``) or ``log``
    (one line through the log pipeline)."""

    name: str = field(
        metadata=_meta(check=_receiver_name, expect="a name of letters, digits, '_', '-', '.'")
    )
    type: Literal["webhook", "slack", "email", "log"]
    url: str | None = field(
        default=None,
        metadata=_meta(
            check=_http_url, expect="an http:// or https:// URL", kinds=("webhook", "slack")
        ),
    )
    headers: dict[str, str] = field(
        default_factory=dict, repr=False, metadata=_meta(secret=True, kinds=("webhook",))
    )
    timeout: float = field(default=10.0, metadata=PUSH_DURATION)
    # email: the SMTP server, STARTTLS (unless tls: false) and LOGIN/PLAIN auth when given.
    smtp_host: str | None = field(default=None, metadata=_meta(kinds=("email",)))
    smtp_port: int = field(default=587, metadata={**PORT, "kinds": ("email",)})
    sender: str | None = field(default=None, metadata=_meta(kinds=("email",)))
    to: tuple[str, ...] = field(default=(), metadata=_meta(kinds=("email",)))
    username: str | None = field(default=None, metadata=_meta(kinds=("email",)))
    password: str | None = field(
        default=None, repr=False, metadata=_meta(secret=True, kinds=("email",))
    )
    starttls: bool = field(default=True, metadata=_meta(kinds=("email",)))
    # A CA bundle to verify the SMTP server's certificate with (a private CA, a test server).
    ca_file: str | None = field(default=None, metadata=_meta(kinds=("email",)))


@dataclass(frozen=True, kw_only=True)
class AlertRouteSettings:
    """Alerts whose labels match every entry of ``match`` (``alertname`` included) go to
    ``receiver``; an alert no route matches goes to ``alerting.default_receiver``."""

    receiver: str
    match: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AlertingSettings:
    """Alerting over the store's metric history and the health checks, evaluated by one
    process per host (``enabled: auto``: when the store keeps the metric history)."""

    enabled: Literal["auto", "true", "false"] = "auto"
    interval: float = field(default=15.0, metadata=POSITIVE_DURATION)
    # The built-in alert kinds: thresholds, `for` and windows (the Prometheus rules too).
    rules: AlertRulesSettings = field(default_factory=AlertRulesSettings)
    # A firing alert is notified again after this long (Alertmanager's repeat_interval).
    repeat_interval: float = field(default=4 * 3600.0, metadata=POSITIVE_DURATION)
    receivers: tuple[AlertReceiverSettings, ...] = ()
    routes: tuple[AlertRouteSettings, ...] = ()
    # "log" is always there (a log line), unless a receiver of that name is configured.
    default_receiver: str = "log"
    # The externalURL and generatorURL base of webhook notifications.
    external_url: str | None = field(
        default=None, metadata=_meta(check=_http_url, expect="an http:// or https:// URL")
    )
