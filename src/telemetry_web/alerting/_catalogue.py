"""The built-in alert kinds: one definition per kind, read by Prometheus and by the embedded
evaluator alike.

Each kind has a name, a severity, summary and description templates, a threshold, a ``for``
duration and a window (``alerting.rules`` overrides the defaults), and its condition written
twice: as a PromQL expression (``expr``, following ``metrics.naming``) and as a
:class:`Condition` an evaluator over stored samples can apply without parsing PromQL.

Templates are ``str.format`` strings over the alert's labels (as the chosen naming spells them,
``{route}`` or ``{http_route}``) and ``{value}``, the measured value already formatted
(``12.5%``, ``730ms``, ``3``). :meth:`AlertRule.render` fills them in; the Prometheus rule files
turn ``{label}`` into ``{{ $labels.label }}`` and ``{value}`` into a ``humanize`` call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .. import semconv as sc
from ..config import TelemetrySettings
from ..config._model import AlertRuleSettings, AlertRulesSettings, MetricRuleSettings

__all__ = [
    "KINDS",
    "AlertRule",
    "Condition",
    "RecordingRule",
    "alert_rules",
    "duration_text",
    "recording_rules",
]

Naming = Literal["default", "otel"]
Aggregation = Literal["error_ratio", "quantile", "min", "increase", "count"]
Comparison = Literal[">", "<"]
Unit = Literal["ratio", "seconds", "count", "status"]

#: The kinds, in the order the rule files list them (the keys of ``alerting.rules``).
KINDS: tuple[str, ...] = (
    "error_ratio",
    "latency_p95",
    "latency_p99",
    "readiness",
    "health_check",
    "spans_dropped",
    "logs_dropped",
    "metrics_dropped",
    "workers",
)

# The live-worker series: one per worker process (prometheus-client's process collector in a
# single process; ProcessMetrics' `liveall` gauge, labelled by pid, under several workers), so
# their count is the number of live workers. Scraped targets have `job` and `instance` labels.
WORKER_FAMILY = "process_start_time_seconds"
_TARGET = ("job", "instance")


@dataclass(frozen=True, kw_only=True)
class Condition:
    """A kind's condition over stored samples, per group of ``by`` labels.

    ``aggregation``:

    - ``error_ratio``: over ``window``, the increase of ``series`` whose ``status_label`` is 5xx
      divided by the increase of all of them (no requests: no value, no alert);
    - ``quantile``: ``histogram_quantile(quantile)`` of ``family``'s bucket increases over
      ``window``;
    - ``min``: the smallest latest value of ``family``'s series in the group;
    - ``increase``: the summed increase of ``family`` over ``window``;
    - ``count``: how many series of ``family`` (one per live worker) have a sample in the last
      ``window``; a group seen before and now without any counts 0.

    Only series whose labels take one of the listed values in ``match`` are used. The alert
    holds while ``value <comparison> threshold`` (:meth:`holds`).
    """

    family: str  # the metric family as the store's metric history names it
    series: str  # the sample name read (a counter's own name, a histogram's `_count`, ...)
    aggregation: Aggregation
    by: tuple[str, ...]
    comparison: Comparison
    threshold: float
    window: float = 0.0  # seconds; 0 for instant values
    quantile: float | None = None
    status_label: str | None = None  # error_ratio: the label holding the HTTP status
    match: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` is an alert (``None`` or NaN, nothing measured, never is)."""
        if value is None or math.isnan(value):
            return False
        return value > self.threshold if self.comparison == ">" else value < self.threshold


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    """One built-in alert as configured: what Prometheus and the embedded evaluator apply."""

    kind: str  # the key under `alerting.rules`
    name: str  # the `alertname`
    severity: str
    summary: str  # templates: see the module docstring
    description: str
    threshold: float
    for_: float  # seconds the condition holds before the alert fires
    window: float  # seconds rates and quantiles are computed over
    unit: Unit
    expr: str  # PromQL
    condition: Condition
    labels: Mapping[str, str] = field(default_factory=dict)  # added to the alert (severity)

    def format_value(self, value: float) -> str:
        """The measured value as the templates show it (``12.5%``, ``730ms``, ``3``)."""
        return _format(value, self.unit)

    def render(self, template: str, labels: Mapping[str, str], value: float) -> str:
        """``summary`` or ``description`` filled in with the alert's labels and value."""
        return template.format_map(_Labels(labels, self.format_value(value)))


@dataclass(frozen=True, kw_only=True)
class RecordingRule:
    """One ``metrics.rules`` entry as a Prometheus recording rule."""

    record: str
    expr: str
    interval: float


class _Labels(dict[str, str]):
    def __init__(self, labels: Mapping[str, str], value: str) -> None:
        super().__init__(labels)
        self["value"] = value

    def __missing__(self, key: str) -> str:
        return ""  # a label the series does not have reads as empty, as in Prometheus


def _format(value: float, unit: Unit) -> str:
    if unit == "ratio":
        return f"{value * 100:.3g}%"
    if unit == "seconds":
        return f"{value * 1000:.4g}ms" if value < 1 else f"{value:.4g}s"
    return f"{value:g}"


# --- defaults --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Default:
    name: str
    severity: str
    threshold: float
    for_: float
    window: float
    unit: Unit
    summary: str
    description: str


_DEFAULTS: dict[str, _Default] = {
    "error_ratio": _Default(
        "TelemetryHighErrorRatio", "critical", 0.05, 300.0, 300.0, "ratio",
        "{service} {route}: {value} of requests fail",
        "More than {threshold} of the requests to {route} in {service} ({environment}) "
        "answered 5xx over the last {window}.",
    ),
    "latency_p95": _Default(
        "TelemetryHighLatencyP95", "warning", 0.5, 600.0, 300.0, "seconds",
        "{service} {route}: p95 latency {value}",
        "The 95th percentile latency of {route} in {service} ({environment}) is above "
        "{threshold} over the last {window}.",
    ),
    "latency_p99": _Default(
        "TelemetryHighLatencyP99", "warning", 1.0, 600.0, 300.0, "seconds",
        "{service} {route}: p99 latency {value}",
        "The 99th percentile latency of {route} in {service} ({environment}) is above "
        "{threshold} over the last {window}.",
    ),
    "readiness": _Default(
        "TelemetryNotReady", "critical", 1.0, 60.0, 60.0, "status",
        "{service} is not ready",
        "A critical health check of {service} ({environment}) on {instance} is failing, so "
        "/ready answers 503.",
    ),
    "health_check": _Default(
        "TelemetryHealthCheckFailing", "warning", 1.0, 60.0, 60.0, "status",
        "{service}: health check {check} failing",
        "The health check {check} of {service} ({environment}) has failed past its "
        "unhealthy_threshold.",
    ),
    "spans_dropped": _Default(
        "TelemetrySpansDropped", "warning", 0.0, 600.0, 600.0, "count",
        "{service} dropped {value} spans ({exporter}: {reason})",
        "{service} ({environment}) dropped spans before export over the last {window} "
        "(exporter {exporter}, reason {reason}): is the trace backend down or too slow?",
    ),
    "logs_dropped": _Default(
        "TelemetryLogEventsDropped", "warning", 0.0, 600.0, 600.0, "count",
        "{service} dropped {value} log events ({sink}: {reason})",
        "{service} ({environment}) dropped log events over the last {window} (sink {sink}, "
        "reason {reason}): is the log backend down or the queue too small?",
    ),
    "metrics_dropped": _Default(
        "TelemetryMetricsDropped", "warning", 0.0, 600.0, 600.0, "count",
        "{service} dropped {value} metric samples ({exporter}: {reason})",
        "{service} ({environment}) could not deliver metric samples over the last {window} "
        "(exporter {exporter}, reason {reason}).",
    ),
    "workers": _Default(
        "TelemetryNoWorkers", "critical", 1.0, 60.0, 60.0, "count",
        "{job} on {instance}: {value} live workers",
        "{job} on {instance} has fewer than {threshold} live worker processes (none answers "
        "the scrape when the count is 0).",
    ),
}  # fmt: skip


# --- building --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Names:
    requests: str  # the family counting requests with a status label
    requests_series: str  # its sample name
    duration: str
    route: str
    status: str


def _names(naming: Naming) -> _Names:
    if naming == "otel":
        duration = sc.OTEL_HTTP_SERVER_DURATION
        return _Names(
            duration, f"{duration}_count", duration, sc.OTEL_LABEL_ROUTE, sc.OTEL_LABEL_STATUS
        )
    return _Names(
        sc.HTTP_REQUESTS_TOTAL,
        sc.HTTP_REQUESTS_TOTAL,
        sc.HTTP_REQUEST_DURATION,
        sc.LABEL_ROUTE,
        sc.LABEL_STATUS,
    )


_SERVICE = (sc.LABEL_SERVICE, sc.LABEL_ENVIRONMENT)


def duration_text(seconds: float) -> str:
    """A duration as Prometheus writes one: ``90s`` → ``1m30s``, ``0.5`` → ``500ms``."""
    ms = round(seconds * 1000)
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return "".join(parts)


def _by(labels: tuple[str, ...]) -> str:
    return ", ".join(labels)


def _matcher(values: tuple[str, ...]) -> str:
    """A PromQL regular expression (in a double-quoted string) matching exactly ``values``."""
    return "|".join(re.escape(v).replace("\\", "\\\\") for v in values)


def _build(
    kind: str, threshold: float, window: float, names: _Names, critical: tuple[str, ...]
) -> tuple[str, Condition]:
    """The PromQL expression and the structured condition of one kind."""
    w = duration_text(window)
    by: tuple[str, ...]
    if kind == "error_ratio":
        by = (*_SERVICE, names.route)
        s = names.requests_series
        errors = f'{s}{{{names.status}=~"5.."}}'
        expr = (
            f"sum by ({_by(by)}) (rate({errors}[{w}]))\n"
            f"  / sum by ({_by(by)}) (rate({s}[{w}]))\n"
            f"  > {threshold:g}"
        )
        return expr, Condition(
            family=names.requests, series=s, aggregation="error_ratio", by=by, comparison=">",
            threshold=threshold, window=window, status_label=names.status,
        )  # fmt: skip
    if kind in ("latency_p95", "latency_p99"):
        q = 0.95 if kind == "latency_p95" else 0.99
        by = (*_SERVICE, names.route)
        expr = (
            f"histogram_quantile({q:g},\n"
            f"  sum by ({_by(by)}, le) (rate({names.duration}_bucket[{w}]))\n"
            f") > {threshold:g}"
        )
        return expr, Condition(
            family=names.duration, series=f"{names.duration}_bucket", aggregation="quantile",
            by=by, comparison=">", threshold=threshold, window=window, quantile=q,
        )  # fmt: skip
    if kind in ("readiness", "health_check"):
        family = sc.HEALTH_CHECK_STATUS
        if kind == "readiness":
            by = (*_SERVICE, "instance")
            match = {sc.LABEL_CHECK: critical} if critical else {}
            selector = family
            if critical:
                selector = f'{family}{{{sc.LABEL_CHECK}=~"{_matcher(critical)}"}}'
        else:
            by = (*_SERVICE, sc.LABEL_CHECK)
            match, selector = {}, family
        expr = f"min by ({_by(by)}) ({selector}) < 1"
        return expr, Condition(
            family=family, series=family, aggregation="min", by=by, comparison="<",
            threshold=1.0, match=match,
        )  # fmt: skip
    if kind in ("spans_dropped", "logs_dropped", "metrics_dropped"):
        family, source = {
            "spans_dropped": (sc.SPANS_DROPPED, "exporter"),
            "logs_dropped": (sc.LOG_EVENTS_DROPPED, "sink"),
            "metrics_dropped": (sc.METRICS_DROPPED, "exporter"),
        }[kind]
        by = (*_SERVICE, source, "reason")
        expr = f"sum by ({_by(by)}) (increase({family}[{w}])) > {threshold:g}"
        return expr, Condition(
            family=family, series=family, aggregation="increase", by=by, comparison=">",
            threshold=threshold, window=window,
        )  # fmt: skip
    assert kind == "workers", kind
    by = _TARGET
    # Fewer live worker series than the threshold; or none at all: the target stopped
    # answering (`up` is 0) after having shown workers in the last hour.
    expr = (
        f"count by ({_by(by)}) ({WORKER_FAMILY}) < {threshold:g}\n"
        f"  or on ({_by(by)}) (\n"
        f"    max by ({_by(by)}) (up) == 0\n"
        f"    and on ({_by(by)}) count by ({_by(by)}) (max_over_time({WORKER_FAMILY}[1h]))\n"
        f"  )"
    )
    return expr, Condition(
        family=WORKER_FAMILY, series=WORKER_FAMILY, aggregation="count", by=by, comparison="<",
        threshold=threshold, window=window,
    )  # fmt: skip


def _route_label(template: str, names: _Names) -> str:
    return template.replace("{route}", "{" + names.route + "}")


def alert_rules(settings: TelemetrySettings) -> list[AlertRule]:
    """The enabled built-in alerts for ``settings`` (``alerting.rules``, ``metrics.naming``, and
    the critical checks of ``health.checks`` for readiness), in :data:`KINDS` order."""
    rules: AlertRulesSettings = settings.alerting.rules
    names = _names(settings.metrics.naming)
    critical = tuple(c.name for c in settings.health.checks if c.critical)
    if critical == tuple(c.name for c in settings.health.checks):
        critical = ()  # every configured check is critical: no need to list them
    built = []
    for kind in KINDS:
        configured: AlertRuleSettings | None = getattr(rules, kind)
        if configured is None or not configured.enabled:
            continue
        d = _DEFAULTS[kind]
        threshold = getattr(configured, "threshold", None)
        threshold = d.threshold if threshold is None else threshold
        window = d.window if configured.window is None else configured.window
        for_ = d.for_ if configured.for_ is None else configured.for_
        severity = configured.severity or d.severity
        expr, condition = _build(kind, threshold, window, names, critical)
        fixed = {
            "threshold": _format(threshold, d.unit),
            "window": duration_text(window),
        }
        built.append(
            AlertRule(
                kind=kind,
                name=d.name,
                severity=severity,
                summary=_route_label(d.summary, names),
                description=_fill(_route_label(d.description, names), fixed),
                threshold=threshold,
                for_=for_,
                window=window,
                unit=d.unit,
                expr=expr,
                condition=condition,
                labels={"severity": severity},
            )
        )
    return built


def _fill(template: str, fixed: Mapping[str, str]) -> str:
    """Put the configured values in now; the labels and ``{value}`` stay for later."""
    for key, text in fixed.items():
        template = template.replace("{" + key + "}", text)
    return template


def recording_rules(settings: TelemetrySettings) -> list[RecordingRule]:
    """``metrics.rules`` as Prometheus recording rules, in configuration order."""
    rules: tuple[MetricRuleSettings, ...] = settings.metrics.rules
    return [RecordingRule(record=r.name, expr=r.query, interval=r.interval) for r in rules]
