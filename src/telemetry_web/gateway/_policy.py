"""Per-route policies of the ``gateway`` section: which route gets which sample rate, request
log and size metrics, and the pieces that apply them (the HTTP metrics and the log filter).

A request's route is its template (``/api/orders/{path:path}``); the first ``gateway.routes``
entry whose ``match`` matches it decides each key it sets, the gateway-wide values the rest.
Decisions are cached per route (templates are few), so the request path pays a dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from .. import semconv as sc
from ..config._model import GatewaySettings, MetricsSettings
from ..metrics._http import HttpMetrics
from ..metrics._registry import MetricSet

__all__ = ["RouteHttpMetrics", "RoutePolicies", "RoutePolicy", "request_log_filter"]

# Past this many distinct routes the cache stops growing (a route outside it is matched again).
_CACHE_LIMIT = 10_000
_REQUEST_LOGGER = "telemetry_web.request"


class RoutePolicy(NamedTuple):
    """What the gateway does for one route; ``sample_rate`` None leaves it to the sampler."""

    sample_rate: float | None
    request_log: bool
    size_metrics: bool
    request_duration: bool


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


class RoutePolicies:
    """The policies of one ``gateway`` section, looked up by route template."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self._rules = tuple((_compile(rule.match), rule) for rule in settings.routes)
        tracing = settings.tracing
        self.default = RoutePolicy(
            sample_rate=tracing.sample_rate if tracing.enabled else 0.0,
            request_log=settings.request_logging,
            size_metrics=settings.metrics.response_size,
            request_duration=settings.metrics.request_duration,
        )
        self._cache: dict[str | None, RoutePolicy] = {}

    def for_route(self, route: str | None) -> RoutePolicy:
        """The policy of ``route`` (None: a request no route matched)."""
        policy = self._cache.get(route)
        if policy is None:
            policy = self._resolve(route)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[route] = policy
        return policy

    def _resolve(self, route: str | None) -> RoutePolicy:
        default = self.default
        if route is None:
            return default
        for pattern, rule in self._rules:
            if pattern.fullmatch(route):
                rate = rule.sample_rate if rule.sample_rate is not None else default.sample_rate
                return RoutePolicy(
                    sample_rate=rate if self.settings.tracing.enabled else 0.0,
                    request_log=_pick(rule.request_log, default.request_log),
                    size_metrics=_pick(rule.size_metrics, default.size_metrics),
                    request_duration=default.request_duration,
                )
        return default

    def sample_rate(self, route: str | None) -> float | None:
        """The rate new traces of ``route`` are started at (None: the configured sampler's)."""
        return self.for_route(route).sample_rate

    @property
    def samples_by_route(self) -> bool:
        """Whether any route is sampled otherwise than ``tracing.sampling`` says."""
        return self.default.sample_rate is not None or any(
            rule.sample_rate is not None for _, rule in self._rules
        )

    @property
    def filters_request_log(self) -> bool:
        return not self.default.request_log or any(
            rule.request_log is not None for _, rule in self._rules
        )

    @property
    def shapes_metrics(self) -> bool:
        return (
            not self.default.size_metrics
            or not self.default.request_duration
            or any(rule.size_metrics is not None for _, rule in self._rules)
        )


def _pick(value: bool | None, default: bool) -> bool:
    return default if value is None else value


class RouteHttpMetrics(HttpMetrics):
    """The RED metrics, leaving out the duration or body-size observations a route's policy
    turns off (the request counter is always kept: it is what error ratios divide by)."""

    def __init__(
        self,
        metrics: MetricSet,
        settings: MetricsSettings,
        policies: RoutePolicies,
        *,
        exemplars: bool = True,
    ) -> None:
        super().__init__(metrics, settings, exemplars=exemplars)
        self.policies = policies

    def record(
        self,
        method: str,
        route: str,
        status: int,
        duration: float,
        request_size: int,
        response_size: int,
        exemplar: Mapping[str, str] | None,
    ) -> None:
        policy = self.policies.for_route(None if route == sc.ROUTE_UNMATCHED else route)
        if policy.size_metrics and policy.request_duration:
            super().record(method, route, status, duration, request_size, response_size, exemplar)
            return
        key = (method, route, status)
        children = self._finished.get(key) or self._children(key)
        requests, duration_hist, request_size_hist, response_size_hist = children
        if requests is not None:
            requests.inc()
        if policy.request_duration:
            duration_hist.observe(duration, exemplar if self.exemplars else None)
        if policy.size_metrics:
            request_size_hist.observe(request_size)
            response_size_hist.observe(response_size)


def http_metrics_for(
    metrics: MetricSet, settings: MetricsSettings, gateway: GatewaySettings, *, exemplars: bool
) -> HttpMetrics:
    """The HTTP metrics the engine records through: per-route ones when ``gateway`` shapes them."""
    policies = RoutePolicies(gateway)
    if policies.shapes_metrics:
        return RouteHttpMetrics(metrics, settings, policies, exemplars=exemplars)
    return HttpMetrics(metrics, settings, exemplars=exemplars)


def request_log_filter(gateway: GatewaySettings) -> list[Any]:
    """A log processor dropping the request lines of routes whose log is off (none needed: [])."""
    policies = RoutePolicies(gateway)
    if not policies.filters_request_log:
        return []

    def drop_request_lines(event: dict[str, Any]) -> dict[str, Any] | None:
        if event.get("logger") != _REQUEST_LOGGER or event.get("event") != "request":
            return event
        route = event.get("route")
        key = None if route == sc.ROUTE_UNMATCHED or not isinstance(route, str) else route
        return event if policies.for_route(key).request_log else None

    return [drop_request_lines]
