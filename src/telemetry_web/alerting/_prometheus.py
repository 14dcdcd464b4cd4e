"""Prometheus rule files from the catalogue: ``metrics.rules`` as recording groups (one per
interval) and the built-in alerts as one alerting group (``telemetry rules export``).

The text is written by hand, not by a YAML dumper, so the committed
``integrations/prometheus/alerts.yml`` reads well and stays byte-for-byte what this module
writes for the default configuration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ..config import TelemetrySettings
from ._catalogue import AlertRule, alert_rules, duration_text, recording_rules

__all__ = ["ALERTS_FILE", "RECORDING_FILE", "alerting_rules_yaml", "recording_rules_yaml"]

ALERTS_FILE = "alerts.yml"
RECORDING_FILE = "recording.yml"
ALERT_GROUP = "telemetry-web-alerts"
RECORDING_GROUP = "telemetry-web-recording"

# How Prometheus shows `{value}` of each unit (text/template functions of its alert templates).
_HUMANIZE = {
    "ratio": "{{ $value | humanizePercentage }}",
    "seconds": "{{ $value | humanizeDuration }}",
    "count": "{{ $value | humanize }}",
    "status": "{{ $value }}",
}
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def prometheus_template(template: str, unit: str) -> str:
    """A catalogue template in Prometheus' syntax: ``{route}`` → ``{{ $labels.route }}``."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return _HUMANIZE[unit] if name == "value" else "{{ $labels." + name + " }}"

    return _PLACEHOLDER.sub(replace, template)


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _block(text: str, indent: str) -> str:
    return "|\n" + "".join(f"{indent}{line}\n" for line in text.splitlines())


def _alert(rule: AlertRule) -> str:
    lines = [
        f"      - alert: {rule.name}\n",
        f"        expr: {_block(rule.expr, ' ' * 10)}",
        f"        for: {duration_text(rule.for_)}\n",
        "        labels:\n",
        *(f"          {k}: {_quoted(v)}\n" for k, v in rule.labels.items()),
        "        annotations:\n",
        f"          summary: {_quoted(prometheus_template(rule.summary, rule.unit))}\n",
        f"          description: {_quoted(prometheus_template(rule.description, rule.unit))}\n",
    ]
    return "".join(lines)


def alerting_rules_yaml(settings: TelemetrySettings, *, header: str = "") -> str:
    """The built-in alerts enabled in ``settings`` as a Prometheus rule file."""
    naming = settings.metrics.naming
    text = [
        header,
        "# Alerting rules for services instrumented with telemetry-web "
        f"({naming} metric naming),\n",
        "# written by `telemetry rules export`. Load with `rule_files: [alerts.yml]`; check with\n",
        "# `promtool check rules alerts.yml`. Thresholds and `for:` come from `alerting.rules`.\n",
        "groups:\n",
        f"  - name: {ALERT_GROUP}\n",
    ]
    rules = alert_rules(settings)
    text.append("    rules:\n" if rules else "    rules: []\n")
    text.extend(_alert(rule) for rule in rules)
    return "".join(text)


def recording_rules_yaml(settings: TelemetrySettings) -> str | None:
    """``metrics.rules`` as a Prometheus rule file, one group per interval (None: no rules)."""
    rules = recording_rules(settings)
    if not rules:
        return None
    groups: dict[float, list[str]] = {}
    for rule in rules:
        groups.setdefault(rule.interval, []).append(
            f"      - record: {rule.record}\n        expr: {_block(rule.expr, ' ' * 10)}"
        )
    text = ["# Recording rules from `metrics.rules`, written by `telemetry rules export`.\n"]
    text.append("groups:\n")
    for interval, entries in groups.items():
        every = duration_text(interval)
        text.append(f"  - name: {RECORDING_GROUP}-{every}\n    interval: {every}\n    rules:\n")
        text.extend(entries)
    return "".join(text)


def rule_files(settings: TelemetrySettings) -> Mapping[str, str]:
    """File name → content of every rule file ``settings`` asks for."""
    files = {ALERTS_FILE: alerting_rules_yaml(settings)}
    recording = recording_rules_yaml(settings)
    if recording is not None:
        files[RECORDING_FILE] = recording
    return files
