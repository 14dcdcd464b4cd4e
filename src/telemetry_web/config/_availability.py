"""Sections the model accepts but this version cannot act on yet.

Configuring one is an error at configure time, never a silent no-op: a user who asked for
StatsD must not believe their metrics are flowing there.
"""

from __future__ import annotations

from . import _model as m

__all__ = ["not_built_yet"]

_LATER = "is not supported by this version of telemetry-web yet; remove it from the configuration"


def not_built_yet(settings: m.TelemetrySettings) -> list[str]:
    """One problem line per configured section that has no behaviour behind it."""
    problems: list[str] = []
    prom = settings.metrics.collectors.prometheus
    if prom is not None and prom.retention is not None:
        problems.append(f"metrics.collectors.prometheus.retention {_LATER}")
    if settings.metrics.collectors.statsd is not None:
        problems.append(f"metrics.collectors.statsd {_LATER}")
    if settings.metrics.exporters.prometheus_remote_write is not None:
        problems.append(f"metrics.exporters.prometheus_remote_write {_LATER}")
    if settings.metrics.exporters.datadog is not None:
        problems.append(f"metrics.exporters.datadog {_LATER}")
    if settings.metrics.rules:
        problems.append(f"metrics.rules {_LATER}")
    if settings.tracing.exporters.jaeger is not None:
        problems.append(
            f"tracing.exporters.jaeger {_LATER} (Jaeger 1.35 and newer accepts "
            "tracing.exporters.otlp)"
        )
    for i, name in enumerate(settings.tracing.propagation):
        if name in ("b3", "b3multi"):
            problems.append(f"tracing.propagation[{i}] '{name}' {_LATER}")
    if settings.logging.sinks.file is not None:
        problems.append(f"logging.sinks.file {_LATER}")
    if settings.logging.sinks.elasticsearch is not None:
        problems.append(f"logging.sinks.elasticsearch {_LATER}")
    if settings.health.checks:
        problems.append(f"health.checks {_LATER}")
    return problems
