"""Deployment assets in integrations/ only use metric names telemetry-web produces."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from telemetry_web import semconv

from .conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted((ROOT / "integrations").rglob("*.yml"))

KNOWN = {
    value
    for name, value in vars(semconv).items()
    if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z_]+", value)
}


def metric_names(expr: str) -> set[str]:
    """Names in a PromQL expression that look like our metric families."""
    found = set(re.findall(r"\b((?:http|telemetry|health)_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", n) for n in found}


def test_there_are_assets_to_check() -> None:
    """The check below is not vacuous."""
    assert RULES


def test_alert_rules_use_known_metric_names() -> None:
    """Every metric an alert rule queries is one that semconv defines."""
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                unknown = metric_names(rule["expr"]) - KNOWN
                assert not unknown, f"{path.name}: {rule['alert']} uses {unknown}"


def test_promtool_accepts_the_rules() -> None:
    """promtool, the Prometheus rule checker, accepts each rules file."""
    promtool = require_tool("promtool")
    for path in RULES:
        result = subprocess.run(
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
