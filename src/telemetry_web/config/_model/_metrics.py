"""The ``metrics:`` section: collectors, exporters and recording rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

from ._fields import PORT, PUSH_DURATION, URL_PATH, _meta, _port, _positive, _push_url

# --- metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PrometheusCollectorSettings:
    """``/metrics`` in Prometheus text or OpenMetrics format, on the app's port or its own."""

    enabled: bool = True
    path: str = field(default="/metrics", metadata=URL_PATH)
    port: int | None = field(default=None, metadata=PORT)
    host: str = "0.0.0.0"
    retention: float | None = field(default=None, metadata=_meta(unit="duration"))
    bearer_token: str | None = field(default=None, metadata=_meta(secret=True))
    # How often the local store snapshots every family (the metric history the CLI reads).
    scrape_interval: float = field(
        default=15.0,
        metadata=_meta(
            unit="duration", check=_positive, expect="a positive duration such as '500ms' or '15s'"
        ),
    )


def _statsd_host(value: str) -> bool:
    name, sep, port = value.rpartition(":")
    if not sep or (":" in name and not name.startswith("[")):  # no port, or a bare IPv6 address
        return bool(value) and " " not in value
    name = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    return bool(name) and " " not in name and port.isdigit() and _port(int(port))


def _statsd_prefix(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_.\-]*", value) is not None


@dataclass(frozen=True, kw_only=True)
class StatsdCollectorSettings:
    """StatsD (or DogStatsD) over UDP: counters as deltas, gauges, histogram buckets as
    counters, flushed every ``flush_interval`` by every worker (metrics/outputs/_statsd.py)."""

    host: str = field(
        default="127.0.0.1:8125",
        metadata=_meta(check=_statsd_host, expect="'host:port' such as 'statsd:8125'"),
    )
    prefix: str = field(
        default="", metadata=_meta(check=_statsd_prefix, expect="letters, digits, '_', '-', '.'")
    )
    flush_interval: float = field(
        default=10.0,
        metadata=_meta(
            unit="duration", check=_positive, expect="a positive duration such as '10s'"
        ),
    )
    # The largest UDP payload: 1432 fits a 1500-byte MTU; 8932 suits jumbo frames or loopback.
    max_packet_size: int = field(
        default=1432,
        metadata=_meta(check=lambda v: 64 <= v <= 65507, expect="a size from 64 to 65507 bytes"),
    )
    dogstatsd: bool = False  # labels as DogStatsD tags (|#k:v) instead of folded into the name


@dataclass(frozen=True, kw_only=True)
class MetricsCollectorsSettings:
    prometheus: PrometheusCollectorSettings | None = field(
        default_factory=PrometheusCollectorSettings
    )
    statsd: StatsdCollectorSettings | None = None


@dataclass(frozen=True, kw_only=True)
class BasicAuthSettings:
    username: str
    password: str = field(repr=False, metadata=_meta(secret=True))


# The Datadog sites (https://docs.datadoghq.com/getting_started/site/); the series go to
# https://api.<site>/api/v2/series.
DatadogSite = Literal["datadoghq.com", "datadoghq.eu", "us3.datadoghq.com", "us5.datadoghq.com",
                      "ap1.datadoghq.com", "ap2.datadoghq.com", "ddog-gov.com"]  # fmt: skip
DATADOG_SITES: tuple[str, ...] = get_args(DatadogSite)


@dataclass(frozen=True, kw_only=True)
class MetricsExporterSettings:
    """One entry of ``metrics.exporters``, pushed every ``interval``: ``prometheus`` (remote
    write to ``endpoint``), ``datadog`` (``api_key``, ``site``) or ``otlp`` (``endpoint``,
    ``protocol``)."""

    type: Literal["prometheus", "datadog", "otlp"]
    endpoint: str | None = field(
        default=None,
        metadata=_meta(
            check=_push_url, expect="a URL such as 'http://prometheus:9090/api/v1/write'"
        ),
    )
    interval: float = field(
        default=15.0,
        metadata=PUSH_DURATION,
    )
    # Each request's limit; a hanging backend holds the output's thread no longer than this.
    timeout: float = field(
        default=10.0,
        metadata=PUSH_DURATION,
    )
    headers: dict[str, str] = field(
        default_factory=dict, repr=False, metadata=_meta(kinds=("prometheus", "otlp"), secret=True)
    )
    basic_auth: BasicAuthSettings | None = field(
        default=None, metadata=_meta(kinds=("prometheus",))
    )
    bearer_token: str | None = field(
        default=None, repr=False, metadata=_meta(kinds=("prometheus",), secret=True)
    )
    api_key: str | None = field(
        default=None, repr=False, metadata=_meta(kinds=("datadog",), secret=True)
    )
    site: DatadogSite = field(default="datadoghq.com", metadata=_meta(kinds=("datadog",)))
    # OTLP: `endpoint` defaults to http://localhost:4318/v1/metrics (http/protobuf) or
    # http://localhost:4317 (grpc).
    protocol: Literal["http/protobuf", "grpc"] = field(
        default="http/protobuf", metadata=_meta(kinds=("otlp",))
    )


def _metric_name(value: str) -> bool:
    return re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", value) is not None


@dataclass(frozen=True, kw_only=True)
class MetricRuleSettings:
    """One ``metrics.rules`` entry: a Prometheus recording rule (``record: name``, ``expr:
    query``) in a group evaluated every ``interval`` (``telemetry rules export``)."""

    name: str = field(
        metadata=_meta(
            check=_metric_name, expect="a metric name such as 'job:http_requests:rate5m'"
        )
    )
    query: str = field(metadata=_meta(check=lambda v: bool(v.strip()), expect="a PromQL query"))
    interval: float = field(
        default=60.0,
        metadata=_meta(unit="duration", check=_positive, expect="a positive duration such as '1m'"),
    )


@dataclass(frozen=True, kw_only=True)
class MetricsSettings:
    enabled: bool = True
    # "otel": the stable OpenTelemetry HTTP metric names as Prometheus translates them.
    naming: Literal["default", "otel"] = "default"
    duration_buckets: tuple[float, ...] | None = None
    # The request and response body-size histograms (18 samples per method, route and status).
    size_histograms: bool = False
    collectors: MetricsCollectorsSettings = field(default_factory=MetricsCollectorsSettings)
    exporters: tuple[MetricsExporterSettings, ...] = ()
    rules: tuple[MetricRuleSettings, ...] = ()
