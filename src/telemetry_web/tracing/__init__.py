"""Tracing on the OpenTelemetry SDK: provider, samplers, propagation, the global hook and the
tracer API for application code (:class:`TelemetryTracer`, :class:`TelemetrySpan`, from
``telemetry.get_tracer(name)``)."""

from __future__ import annotations

from ._api import TelemetrySpan, TelemetryTracer

__all__ = ["TelemetrySpan", "TelemetryTracer"]
