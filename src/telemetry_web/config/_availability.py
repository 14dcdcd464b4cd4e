"""Configurations the model accepts but this version cannot act on.

Configuring one is an error at configure time, never a silent no-op: a user who asked for
something must not believe it is happening. Every section is built now; what is left are
combinations (the Jaeger collector and agent at once).
"""

from __future__ import annotations

from . import _model as m

__all__ = ["not_built_yet"]


def not_built_yet(settings: m.TelemetrySettings) -> list[str]:
    """One problem line per configured combination that has no behaviour behind it."""
    problems: list[str] = []
    jaeger = settings.tracing.exporters.jaeger
    if jaeger is not None and jaeger.endpoint is not None and jaeger.agent is not None:
        problems.append(
            "tracing.exporters.jaeger: sending to both the collector (endpoint) and the agent "
            "is not supported; set one of them"
        )
    return problems
