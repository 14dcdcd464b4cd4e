"""Tracing on the OpenTelemetry SDK: provider, samplers, propagation, the global hook and the
tracer API (:class:`TelemetryTracer`, :class:`TelemetrySpan`)."""

from __future__ import annotations

from ._api import TelemetrySpan, TelemetryTracer
from ._global import GLOBAL_PROVIDER, install_global_provider
from ._propagation import Extractor, build_propagator
from ._provider import TelemetryTracerProvider, build_tracer_provider
from ._sampling import RateLimitingSampler, build_sampler
from ._span import SpanFactory

__all__ = [
    "GLOBAL_PROVIDER",
    "Extractor",
    "RateLimitingSampler",
    "SpanFactory",
    "TelemetrySpan",
    "TelemetryTracer",
    "TelemetryTracerProvider",
    "build_propagator",
    "build_sampler",
    "build_tracer_provider",
    "install_global_provider",
]
