"""Sections the model accepts but this version cannot act on yet.

Configuring one is an error at configure time, never a silent no-op: a user who asked for
StatsD must not believe their metrics are flowing there.
"""

from __future__ import annotations

from . import _model as m

__all__ = ["not_built_yet"]

# The `metrics.exporters` types with an output behind them (telemetry_web.metrics.outputs).
_BUILT_METRICS_EXPORTERS = frozenset({"prometheus"})

_LATER = "is not supported by this version of telemetry-web yet; remove it from the configuration"


def not_built_yet(settings: m.TelemetrySettings) -> list[str]:
    """One problem line per configured section that has no behaviour behind it."""
    problems: list[str] = []
    if settings.metrics.collectors.statsd is not None:
        problems.append(f"metrics.collectors.statsd {_LATER}")
    for index, exporter in enumerate(settings.metrics.exporters):
        if exporter.type not in _BUILT_METRICS_EXPORTERS:
            problems.append(f"metrics.exporters[{index}] (type '{exporter.type}') {_LATER}")
    jaeger = settings.tracing.exporters.jaeger
    if jaeger is not None and jaeger.endpoint is not None and jaeger.agent is not None:
        problems.append(
            "tracing.exporters.jaeger: sending to both the collector (endpoint) and the agent "
            "is not supported; set one of them"
        )
    return problems
