"""Incoming trace context: the configured propagators, and extraction that never fails."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["Extractor", "build_propagator"]

_log = logging.getLogger("telemetry_web.tracing")

_FACTORIES = {"w3c": TraceContextTextMapPropagator, "baggage": W3CBaggagePropagator}
# Only these headers can carry context; a request with none of them skips extraction entirely.
_HEADERS = {"w3c": ("traceparent", "tracestate"), "baggage": ("baggage",)}
_EMPTY = Context()


def build_propagator(names: Sequence[str]) -> TextMapPropagator:
    return CompositePropagator([_FACTORIES[name]() for name in names if name in _FACTORIES])


class Extractor:
    """Turns request headers into a parent context; malformed headers give a new root trace."""

    def __init__(self, names: Sequence[str]) -> None:
        self.propagator = build_propagator(names)
        self.header_names = frozenset(h for name in names for h in _HEADERS.get(name, ()))

    def extract(self, headers: Mapping[str, str]) -> Context:
        for name in self.header_names:
            if name in headers:
                break
        else:
            return _EMPTY
        try:
            return self.propagator.extract(headers)
        except Exception:  # a propagator bug must not turn a request into a 500
            _log.debug("ignoring unreadable trace context headers", exc_info=True)
            return _EMPTY
