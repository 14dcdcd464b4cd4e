"""Samplers from the ``tracing.sampling`` section, including a token-bucket rate limiter."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.util.types import Attributes

from ..config import Sampling

__all__ = ["RateLimitingSampler", "build_sampler"]


class RateLimitingSampler(Sampler):
    """At most ``rate`` new root traces per second (a token bucket holding one second's worth).

    A parent's sampled decision is always honoured, so a trace is never cut in the middle.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity
        self._clock = clock
        self._last = self._clock()
        self._lock = threading.Lock()

    def _take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0 - 1e-9:  # 1/3 s at 3/s is one token, float or not
                self._tokens -= 1.0
                return True
            return False

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: object = None,
    ) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            decision = Decision.RECORD_AND_SAMPLE if parent.trace_flags.sampled else Decision.DROP
            return SamplingResult(decision, attributes, parent.trace_state)
        decision = Decision.RECORD_AND_SAMPLE if self._take() else Decision.DROP
        return SamplingResult(decision, attributes)

    def get_description(self) -> str:
        return f"RateLimitingSampler{{{self._rate}/s}}"


def build_sampler(settings: Sampling) -> Sampler:
    """The SDK sampler for one ``tracing.sampling`` section."""
    kind = settings.type
    if kind == "always_on":
        return ALWAYS_ON
    if kind == "always_off":
        return ALWAYS_OFF
    if kind == "ratio":
        return TraceIdRatioBased(settings.rate if settings.rate is not None else 1.0)
    if kind == "rate_limiting":
        return RateLimitingSampler(settings.rate or 1.0)
    root = build_sampler(settings.root) if settings.root is not None else ALWAYS_ON
    return ParentBased(root)
