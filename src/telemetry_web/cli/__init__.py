"""The ``telemetry`` command: read what the embedded store recorded, list a service's metrics,
check a configuration file.

::

    telemetry traces search --service orders --status error --since 15m
    telemetry traces show 4bf92f3577b34da6a3ce929d0e0e4736
    telemetry traces stats --since 1h
    telemetry logs tail --service orders --level warning --follow
    telemetry metrics list --url http://127.0.0.1:8000/metrics
    telemetry config check telemetry.yaml
    telemetry rules export --out rules/
    telemetry alertmanager-config --webhook http://127.0.0.1:9000/hook

Every command takes ``--json``; errors are one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import click

from .. import __version__
from ._output import TelemetryGroup
from .alerts import alerts
from .config import config
from .logs import logs
from .metrics import metrics
from .rules import alertmanager_config, rules
from .run import run
from .traces import traces
from .ui import ui

__all__ = ["main"]


@click.group(cls=TelemetryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="telemetry")
def main() -> None:
    """Traces, logs and metrics of a telemetry-web service, from the terminal."""


main.add_command(traces)
main.add_command(logs)
main.add_command(metrics)
main.add_command(config)
main.add_command(run)
main.add_command(alerts)
main.add_command(rules)
main.add_command(alertmanager_config)
main.add_command(ui)
