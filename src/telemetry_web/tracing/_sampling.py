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

from ..config import SamplingSettings
from ..config._model import GatewaySettings

__all__ = ["RateLimitingSampler", "RouteSampler", "build_sampler"]

_HTTP_ROUTE = "http.route"


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


class RouteSampler(Sampler):
    """New traces started by a SERVER span sampled at the rate its route's policy gives
    (``gateway.routes``, read from the ``http.route`` the adapter resolved before the span
    started); every other span, and routes without a rate, go to ``delegate``.

    A span with a valid parent is always the delegate's (a parent-based sampler keeps the
    caller's decision), so the rate decides where a trace starts and never cuts one. The
    decision is OpenTelemetry's trace-id ratio: services sampling by ratio agree on it.
    """

    def __init__(self, delegate: Sampler, rate_for: Callable[[str | None], float | None]) -> None:
        self._delegate = delegate
        self._rate_for = rate_for
        self._ratios: dict[float, Sampler] = {}

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
        sampler = self._delegate
        if (
            kind is SpanKind.SERVER
            and not get_current_span(parent_context).get_span_context().is_valid
        ):
            route = attributes.get(_HTTP_ROUTE) if attributes else None
            rate = self._rate_for(route if isinstance(route, str) else None)
            if rate is not None:
                sampler = self._ratio(rate)
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links)

    def _ratio(self, rate: float) -> Sampler:
        sampler = self._ratios.get(rate)
        if sampler is None:
            sampler = (
                ALWAYS_OFF if rate <= 0.0 else ALWAYS_ON if rate >= 1.0 else TraceIdRatioBased(rate)
            )
            self._ratios[rate] = sampler
        return sampler

    def get_description(self) -> str:
        return f"RouteSampler{{{self._delegate.get_description()}}}"


def build_sampler(settings: SamplingSettings, gateway: GatewaySettings | None = None) -> Sampler:
    """The SDK sampler for one ``tracing.sampling`` section, route-aware when ``gateway``
    gives routes rates of their own."""
    sampler = _build_sampler(settings)
    if gateway is not None:
        from ..gateway._policy import RoutePolicies

        policies = RoutePolicies(gateway)
        if policies.samples_by_route:
            return RouteSampler(sampler, policies.sample_rate)
    return sampler


def _build_sampler(settings: SamplingSettings) -> Sampler:
    kind = settings.type
    if kind == "always_on":
        return ALWAYS_ON
    if kind == "always_off":
        return ALWAYS_OFF
    if kind == "ratio":
        return TraceIdRatioBased(settings.rate if settings.rate is not None else 1.0)
    if kind == "rate_limiting":
        return RateLimitingSampler(settings.rate or 1.0)
    root = _build_sampler(settings.root) if settings.root is not None else ALWAYS_ON
    return ParentBased(root)
