"""Prometheus rule files and the Alertmanager configuration from the alert catalogue."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from telemetry_web.alerting import KINDS, alert_rules
from telemetry_web.alerting._alertmanager import alertmanager_yaml
from telemetry_web.alerting._prometheus import alerting_rules_yaml, rule_files
from telemetry_web.cli import main
from telemetry_web.config import parse_settings
from telemetry_web.errors import ConfigError

from ..conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = {
    "metrics": {
        "rules": [
            {"name": "route:http_requests:rate1m", "interval": "30s",
             "query": "sum by (route) (rate(http_requests_total[1m]))"},
            {"name": "service:http_errors:rate5m", "interval": "1m",
             "query": 'sum by (service) (rate(http_requests_total{status=~"5.."}[5m]))'},
        ]
    },
    "health": {"checks": [
        {"name": "db.main", "check": {"type": "tcp", "host": "db", "port": 5432}},
        {"name": "cache", "critical": False, "check": {"type": "tcp", "host": "c", "port": 6379}},
    ]},
    "alerting": {"rules": {"error_ratio": {"threshold": 0.1, "for": "2m", "window": "1m"},
                           "latency_p99": False, "workers": {"threshold": 2}}},
}  # fmt: skip


def settings(naming: str = "default", **extra: Any) -> Any:
    return parse_settings({**CONFIG, "metrics": {**CONFIG["metrics"], "naming": naming}, **extra})


def test_committed_alerts_file_is_the_generated_one() -> None:
    """integrations/prometheus/alerts.yml is exactly what `telemetry rules export` writes for
    the default configuration, so it cannot drift from the catalogue."""
    committed = (ROOT / "integrations" / "prometheus" / "alerts.yml").read_text()
    assert committed == alerting_rules_yaml(parse_settings({}))


def test_default_catalogue_has_every_kind() -> None:
    """With no configuration every kind is on, with its default threshold and `for`."""
    rules = {r.kind: r for r in alert_rules(parse_settings({}))}
    assert tuple(rules) == KINDS
    assert [(k, rules[k].threshold, rules[k].for_, rules[k].severity) for k in KINDS] == [
        ("error_ratio", 0.05, 300.0, "critical"),
        ("latency_p95", 0.5, 600.0, "warning"),
        ("latency_p99", 1.0, 600.0, "warning"),
        ("readiness", 1.0, 60.0, "critical"),
        ("health_check", 1.0, 60.0, "warning"),
        ("spans_dropped", 0.0, 600.0, "warning"),
        ("logs_dropped", 0.0, 600.0, "warning"),
        ("metrics_dropped", 0.0, 600.0, "warning"),
        ("workers", 1.0, 60.0, "critical"),
    ]


@pytest.mark.parametrize(
    ("naming", "expr", "family", "series", "by"),
    [
        ("default",
         'sum by (service, environment, route) (rate(http_requests_total{status=~"5.."}[1m]))\n'
         "  / sum by (service, environment, route) (rate(http_requests_total[1m]))\n  > 0.1",
         "http_requests_total", "http_requests_total", ("service", "environment", "route")),
        ("otel",
         "sum by (service, environment, http_route) (rate(http_server_request_duration_seconds_"
         'count{http_response_status_code=~"5.."}[1m]))\n'
         "  / sum by (service, environment, http_route) "
         "(rate(http_server_request_duration_seconds_count[1m]))\n  > 0.1",
         "http_server_request_duration_seconds", "http_server_request_duration_seconds_count",
         ("service", "environment", "http_route")),
    ],
)  # fmt: skip
def test_error_ratio_follows_the_naming(
    naming: str, expr: str, family: str, series: str, by: tuple[str, ...]
) -> None:
    """The error-ratio rule's PromQL and structured condition use the naming's names."""
    rule = next(r for r in alert_rules(settings(naming)) if r.kind == "error_ratio")
    assert rule.expr == expr
    c = rule.condition
    assert (c.family, c.series, c.aggregation, c.by, c.comparison, c.threshold, c.window) == (
        family, series, "error_ratio", by, ">", 0.1, 60.0,
    )  # fmt: skip
    assert c.status_label == ("status" if naming == "default" else "http_response_status_code")
    assert rule.for_ == 120.0
    assert [c.holds(v) for v in (0.1, 0.11, None, float("nan"))] == [False, True, False, False]


def test_readiness_lists_only_critical_checks() -> None:
    """Readiness watches the critical checks of health.checks; a switched-off kind is absent."""
    rules = {r.kind: r for r in alert_rules(settings())}
    assert rules["readiness"].expr == (
        'min by (service, environment, instance) (health_check_status{check=~"db\\\\.main"}) < 1'
    )
    assert dict(rules["readiness"].condition.match) == {"check": ("db.main",)}
    assert "latency_p99" not in rules
    assert rules["workers"].condition.threshold == 2.0


def test_templates_render_for_the_embedded_evaluator() -> None:
    """summary/description fill in labels and the formatted value."""
    rule = next(r for r in alert_rules(settings()) if r.kind == "error_ratio")
    labels = {"service": "orders", "environment": "prod", "route": "/orders/{id}"}
    assert rule.render(rule.summary, labels, 0.125) == "orders /orders/{id}: 12.5% of requests fail"
    assert rule.render(rule.description, labels, 0.125) == (
        "More than 10% of the requests to /orders/{id} in orders (prod) answered 5xx over the "
        "last 1m."
    )


def test_recording_rules_are_grouped_by_interval() -> None:
    """metrics.rules become one recording group per interval."""
    recording = yaml.safe_load(rule_files(settings())["recording.yml"])
    assert recording == {"groups": [
        {"name": "telemetry-web-recording-30s", "interval": "30s", "rules": [
            {"record": "route:http_requests:rate1m",
             "expr": "sum by (route) (rate(http_requests_total[1m]))\n"}]},
        {"name": "telemetry-web-recording-1m", "interval": "1m", "rules": [
            {"record": "service:http_errors:rate5m",
             "expr": 'sum by (service) (rate(http_requests_total{status=~"5.."}[5m]))\n'}]},
    ]}  # fmt: skip


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"alerting": {"rules": {"error_ratio": {"threshold": 5}}}},
         "alerting.rules.error_ratio.threshold: expected a ratio from 0 to 1 such as 0.05, got 5"),
        ({"alerting": {"rules": {"latency_p95": {"threshold": "fast"}}}},
         "alerting.rules.latency_p95.threshold: expected a latency such as '500ms', got 'fast'"),
        ({"alerting": {"rules": {"workers": {"for": "-1m"}}}},
         "alerting.rules.workers.for: expected a duration such as '5m' or 0, got '-1m'"),
        ({"alerting": {"rules": {"error_rate": {}}}},
         "alerting.rules.error_rate: unknown key (did you mean 'error_ratio'?)"),
        ({"alerting": {"rules": {"readiness": {"threshold": 1}}}},
         "alerting.rules.readiness.threshold: unknown key"),
        ({"metrics": {"rules": [{"name": "bad name", "query": "up"}]}},
         "metrics.rules[0].name: expected a metric name such as 'job:http_requests:rate5m', "
         "got 'bad name'"),
        ({"metrics": {"rules": [{"name": "a", "query": "up", "interval": 0}]}},
         "metrics.rules[0].interval: expected a positive duration such as '1m', got 0"),
    ],
)  # fmt: skip
def test_bad_rule_settings_name_their_key_path(config: dict[str, Any], problem: str) -> None:
    """A bad alerting.rules or metrics.rules value is a ConfigError naming its key path."""
    with pytest.raises(ConfigError) as info:
        parse_settings(config)
    assert info.value.problems == [problem]


@pytest.mark.parametrize("naming", ["default", "otel"])
def test_promtool_and_amtool_accept_the_exported_files(naming: str, tmp_path: Path) -> None:
    """`telemetry rules export` and `telemetry alertmanager-config` write files that the real
    promtool and amtool accept, in both namings."""
    promtool, amtool = require_tool("promtool"), require_tool("amtool")
    config = tmp_path / "telemetry.yaml"
    config.write_text(
        yaml.safe_dump({**CONFIG, "metrics": {**CONFIG["metrics"], "naming": naming}})
    )
    runner = CliRunner()
    out = tmp_path / "rules"
    result = runner.invoke(main, ["rules", "export", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["alerts.yml", "recording.yml"]
    check = subprocess.run(
        [promtool, "check", "rules", *map(str, sorted(out.iterdir()))],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout
    assert "SUCCESS: 2 rules found" in check.stdout
    am = tmp_path / "alertmanager.yml"
    result = runner.invoke(main, [
        "alertmanager-config", "--config", str(config), "--out", str(am),
        "--webhook", "http://127.0.0.1:9/a", "--webhook", "http://127.0.0.1:9/b",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    check = subprocess.run(
        [amtool, "check-config", str(am)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    route = yaml.safe_load(am.read_text())["route"]
    assert route["receiver"] == "webhook-1"
    assert route["routes"] == [
        {"receiver": "webhook-2", "continue": True},
        {"receiver": "webhook-1"},
    ]


def test_alertmanager_config_without_receivers_is_valid() -> None:
    """No receivers and no --webhook: a configuration Alertmanager accepts, sending nowhere."""
    text = alertmanager_yaml(parse_settings({}))
    assert yaml.safe_load(text)["route"]["receiver"] == "telemetry-web-none"
