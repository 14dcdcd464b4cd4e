"""Alerting on the metrics telemetry-web emits.

The built-in alert kinds (``alerting.rules``: error ratio and p95/p99 latency per route,
readiness, failing health checks, dropped spans, log events and metric samples, no live
workers) are defined once, in :func:`alert_rules`, each with its PromQL expression and a
:class:`Condition` an evaluator over stored samples applies; ``metrics.rules`` become
:func:`recording_rules`. ``telemetry rules export`` and ``telemetry alertmanager-config`` write
them for Prometheus and Alertmanager.
"""

from __future__ import annotations

from ._catalogue import (
    KINDS,
    AlertRule,
    Condition,
    RecordingRule,
    alert_rules,
    recording_rules,
)

__all__ = [
    "KINDS",
    "AlertRule",
    "Condition",
    "RecordingRule",
    "alert_rules",
    "recording_rules",
]
