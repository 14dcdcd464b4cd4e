"""Metrics: builders over prometheus-client, the HTTP RED metrics, and the ``/metrics`` endpoint.

Application metrics come from ``telemetry.create_counter(name)`` (``create_gauge``,
``create_histogram``): a :class:`MetricBuilder` whose ``register()`` returns a :class:`Metric`.
"""

from __future__ import annotations

from ._registry import Metric, MetricBuilder

__all__ = ["Metric", "MetricBuilder"]
