"""``telemetry rules export`` and ``telemetry alertmanager-config``: the built-in alerts and
``metrics.rules`` for Prometheus, and an Alertmanager configuration for the receivers.

Both read the configuration as the service does (``--config FILE``, else ``$TELEMETRY_CONFIG``,
plus the ``TELEMETRY_*``/``OTEL_*`` variables) and follow its ``metrics.naming``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..alerting._alertmanager import Timing, alertmanager_yaml
from ..alerting._prometheus import rule_files
from ..config import TelemetrySettings, load_settings
from ..errors import ConfigError
from ._common import DURATION
from ._output import CliError

__all__ = ["alertmanager_config", "rules"]

_CONFIG = click.option(
    "--config",
    "config_file",
    metavar="FILE",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="The configuration file (default: $TELEMETRY_CONFIG).",
)


def _settings(config_file: str | None) -> TelemetrySettings:
    try:
        return load_settings(config_file)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


@click.group()
def rules() -> None:
    """Prometheus rules for the metrics telemetry-web emits."""


@rules.command("export")
@_CONFIG
@click.option(
    "--out",
    "out_dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="Write alerts.yml (and recording.yml for metrics.rules) into DIR; default: stdout.",
)
def export(config_file: str | None, out_dir: str | None) -> None:
    """Write the alerting rules (alerting.rules) and recording rules (metrics.rules)."""
    files = rule_files(_settings(config_file))
    if out_dir is None:
        click.echo("---\n".join(files.values()), nl=False)
        return
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
        click.echo(str(directory / name))


@click.command("alertmanager-config")
@_CONFIG
@click.option(
    "--out",
    "out_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the configuration to FILE; default: stdout.",
)
@click.option(
    "--webhook",
    "webhooks",
    metavar="URL",
    multiple=True,
    help="Also send every alert to this webhook (repeatable).",
)
@click.option("--group-wait", type=DURATION, default=30.0, show_default="30s")
@click.option("--group-interval", type=DURATION, default=300.0, show_default="5m")
@click.option(
    "--repeat-interval", type=DURATION, default=None, help="Default: alerting.repeat_interval."
)
def alertmanager_config(
    config_file: str | None,
    out_file: str | None,
    webhooks: tuple[str, ...],
    group_wait: float,
    group_interval: float,
    repeat_interval: float | None,
) -> None:
    """Write an Alertmanager configuration routing the alerts to the configured receivers."""
    for url in webhooks:
        if not url.startswith(("http://", "https://")):
            raise click.BadParameter(f"{url!r} is not an http(s) URL", param_hint="'--webhook'")
    timing = Timing(
        group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval
    )
    text = alertmanager_yaml(_settings(config_file), webhooks=webhooks, timing=timing)
    if out_file is None:
        click.echo(text, nl=False)
    else:
        Path(out_file).write_text(text, encoding="utf-8")
        click.echo(out_file)
