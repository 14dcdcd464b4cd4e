"""End to end with the real programs: the sample app under uvicorn, scraped by Prometheus with
the exported rules, Alertmanager with the exported configuration, and a loopback webhook that
receives the error-ratio alert firing during an error burst and resolved after it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from telemetry_web.cli import main

from .._net import free_port
from .._waiting import wait_until
from ..conftest import require_tool
from ._loopback import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
OFF = ("latency_p95", "latency_p99", "readiness", "health_check", "spans_dropped",
       "logs_dropped", "metrics_dropped", "workers")  # fmt: skip


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_error_burst_fires_and_resolves_through_prometheus_and_alertmanager(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """An error burst on /api/fail makes the real Prometheus fire TelemetryHighErrorRatio, the
    real Alertmanager delivers it to the webhook, and a resolved notification follows."""
    prometheus = require_tool("prometheus")
    alertmanager = require_tool("prometheus-alertmanager")
    webhook = WebhookReceiver()
    try:
        config = tmp_path / "telemetry.yaml"
        config.write_text(yaml.safe_dump({
            "store": {"enabled": "false"},
            "logging": {"sinks": {"console": False}},
            "alerting": {"rules": {
                "error_ratio": {"threshold": 0.2, "for": "2s", "window": "5s"},
                **dict.fromkeys(OFF, False),
            }},
        }))  # fmt: skip
        runner = CliRunner()
        rules_dir = tmp_path / "rules"
        exported = runner.invoke(
            main, ["rules", "export", "--config", str(config), "--out", str(rules_dir)]
        )
        assert exported.exit_code == 0, exported.output
        am_file = tmp_path / "alertmanager.yml"
        exported = runner.invoke(main, [
            "alertmanager-config", "--config", str(config), "--out", str(am_file),
            "--webhook", webhook.url, "--group-wait", "1s", "--group-interval", "1s",
            "--repeat-interval", "1h",
        ])  # fmt: skip
        assert exported.exit_code == 0, exported.output

        app_port, prom_port, am_port = free_port(), free_port(), free_port()
        env = {**os.environ, "TELEMETRY_CONFIG": str(config)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        processes.append(start([
            sys.executable, "-m", "uvicorn", "sample_apps.starlette_app:app",
            "--host", "127.0.0.1", "--port", str(app_port), "--log-level", "warning",
        ], tmp_path / "app.log", env))  # fmt: skip
        processes.append(start([
            alertmanager, f"--config.file={am_file}", f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=",
        ], tmp_path / "alertmanager.log"))  # fmt: skip
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules_dir / "alerts.yml")],
            "alerting": {"alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
            ]},
            "scrape_configs": [
                {"job_name": "app", "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}
            ],
        }))  # fmt: skip
        processes.append(start([
            prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s",
        ], tmp_path / "prometheus.log"))  # fmt: skip
        app = f"http://127.0.0.1:{app_port}"
        wait_until(lambda: ready(f"{app}/health"), 15, what="the sample app")
        wait_until(lambda: ready(f"http://127.0.0.1:{am_port}/-/ready"), 15, what="Alertmanager")
        wait_until(lambda: ready(f"http://127.0.0.1:{prom_port}/-/ready"), 15, what="Prometheus")

        def firing() -> list[dict[str, Any]]:
            return [n.body for n in webhook.received if n.body["status"] == "firing"]

        # A connection per request: uvicorn closes one after the app's unhandled exception.
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=app, timeout=5, limits=no_keepalive) as client:
            deadline = time.monotonic() + 30
            while not firing() and time.monotonic() < deadline:  # the burst: 1 in 2 fail
                assert client.get("/api/fail").status_code == 500
                assert client.get("/api/users").status_code == 200
                time.sleep(0.05)
        notice = wait_until(firing, 5, what="the firing notification")[0]
        alert = notice["alerts"][0]
        assert notice["receiver"] == "webhook-1"
        assert alert["status"] == "firing"
        assert {k: alert["labels"][k] for k in ("alertname", "severity", "service", "route")} == {
            "alertname": "TelemetryHighErrorRatio", "severity": "critical", "service": "sample-app",
            "route": "/api/fail",
        }  # fmt: skip
        assert alert["annotations"]["summary"].startswith("sample-app /api/fail: ")
        assert alert["annotations"]["summary"].endswith("% of requests fail")
        assert [a["labels"]["route"] for a in notice["alerts"]] == ["/api/fail"]

        resolved = wait_until(
            lambda: [n.body for n in webhook.received if n.body["status"] == "resolved"],
            25, what="the resolved notification",
        )[0]  # fmt: skip
        assert resolved["alerts"][0]["labels"]["alertname"] == "TelemetryHighErrorRatio"
        assert resolved["alerts"][0]["status"] == "resolved"
    finally:
        webhook.close()
