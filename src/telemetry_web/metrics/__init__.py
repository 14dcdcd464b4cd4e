"""Metrics: builders over prometheus-client, the HTTP RED metrics, and the ``/metrics`` endpoint."""

from __future__ import annotations

from ._exposition import MetricsEndpoint, serve_metrics_in_thread
from ._http import HttpMetrics
from ._multiprocess import (
    MultiprocessCollector,
    ProcessMetrics,
    multiprocess_dir,
    retire_worker,
)
from ._registry import Metric, MetricBuilder, MetricDefinition, MetricSet

__all__ = [
    "HttpMetrics",
    "Metric",
    "MetricBuilder",
    "MetricDefinition",
    "MetricSet",
    "MetricsEndpoint",
    "MultiprocessCollector",
    "ProcessMetrics",
    "multiprocess_dir",
    "retire_worker",
    "serve_metrics_in_thread",
]
