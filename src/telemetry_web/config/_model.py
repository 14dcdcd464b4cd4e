"""The typed configuration model: one frozen dataclass per section of the configuration file.

Field metadata drives validation in ``_parse.py``:

- ``unit``: ``"duration"`` (``10s``, ``5m``, ``15d`` or seconds) or ``"size"`` (``100MB`` or bytes);
- ``check``: a predicate on the converted value, with ``expect`` saying what it accepts;
- ``kinds``: on a tagged section (one with a ``type`` field), the types a key applies to;
- ``secret``: the value never appears in an error message.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ..semconv import DEFAULT_SERVICE

__all__ = [
    "AlertReceiver",
    "AlertRoute",
    "AlertRuleSettings",
    "AlertRules",
    "AlertingSettings",
    "BasicAuth",
    "BatchSettings",
    "ConsoleSink",
    "CountAlertRule",
    "ElasticsearchSink",
    "FileRotation",
    "FileSink",
    "GatewayMetrics",
    "GatewayRoute",
    "GatewaySettings",
    "GatewayTracing",
    "HealthCheck",
    "HealthCheckTarget",
    "HealthSettings",
    "HttpSettings",
    "JaegerAgent",
    "JaegerExporter",
    "LatencyAlertRule",
    "LogLevel",
    "LogProcessor",
    "LoggingSettings",
    "LoggingSinks",
    "MeshSettings",
    "MetricRule",
    "MetricsCollectors",
    "MetricsExporter",
    "MetricsSettings",
    "OtlpExporter",
    "OtlpLogSink",
    "PrometheusCollector",
    "RatioAlertRule",
    "Sampling",
    "StatsdCollector",
    "StoreSettings",
    "TelemetrySettings",
    "TracingExporters",
    "TracingSettings",
    "TrustSettings",
    "ZipkinExporter",
    "ZipkinLocalEndpoint",
]

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Propagator = Literal["w3c", "b3", "b3multi", "baggage"]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _meta(
    *,
    unit: str | None = None,
    check: Any = None,
    expect: str | None = None,
    kinds: tuple[str, ...] | None = None,
    secret: bool = False,
) -> dict[str, Any]:
    return {"unit": unit, "check": check, "expect": expect, "kinds": kinds, "secret": secret}


def _positive(value: float) -> bool:
    return value > 0


def _port(value: int) -> bool:
    return 0 < value < 65536


def _url_path(value: str) -> bool:
    return value.startswith("/") and " " not in value


# Labels that every telemetry-web metric already has, and those Prometheus reserves.
RESERVED_LABELS = frozenset({"le", "quantile", "service", "environment", "method", "route",
                             "status"})  # fmt: skip


def _label_names(value: dict[str, str]) -> bool:
    return all(
        _LABEL_NAME.match(k) and not k.startswith("__") and k not in RESERVED_LABELS for k in value
    )


POSITIVE = _meta(check=_positive, expect="a positive number")
POSITIVE_SIZE = _meta(
    unit="size", check=_positive, expect="a positive size such as '4MiB', '512KB' or bytes"
)
PORT = _meta(check=_port, expect="a port number from 1 to 65535")
URL_PATH = _meta(check=_url_path, expect="a URL path starting with '/'")


# --- metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PrometheusCollector:
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
class StatsdCollector:
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
class MetricsCollectors:
    prometheus: PrometheusCollector | None = field(default_factory=PrometheusCollector)
    statsd: StatsdCollector | None = None


def _push_url(value: str) -> bool:
    return _http_url(value)  # defined with the log sinks, below


PUSH_DURATION = _meta(unit="duration", check=_positive, expect="a positive duration such as '15s'")


@dataclass(frozen=True, kw_only=True)
class BasicAuth:
    username: str
    password: str = field(repr=False, metadata=_meta(secret=True))


# The Datadog sites (https://docs.datadoghq.com/getting_started/site/); the series go to
# https://api.<site>/api/v2/series.
DatadogSite = Literal["datadoghq.com", "datadoghq.eu", "us3.datadoghq.com", "us5.datadoghq.com",
                      "ap1.datadoghq.com", "ap2.datadoghq.com", "ddog-gov.com"]  # fmt: skip
DATADOG_SITES: tuple[str, ...] = get_args(DatadogSite)


@dataclass(frozen=True, kw_only=True)
class MetricsExporter:
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
    basic_auth: BasicAuth | None = field(default=None, metadata=_meta(kinds=("prometheus",)))
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
class MetricRule:
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
    collectors: MetricsCollectors = field(default_factory=MetricsCollectors)
    exporters: tuple[MetricsExporter, ...] = ()
    rules: tuple[MetricRule, ...] = ()


# --- tracing ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Sampling:
    """``always_on``, ``always_off``, ``ratio {rate}``, ``rate_limiting {rate}`` or
    ``parent_based {root}``."""

    type: Literal["always_on", "always_off", "ratio", "rate_limiting", "parent_based"] = (
        "parent_based"
    )
    rate: float | None = field(
        default=None, metadata=_meta(kinds=("ratio", "rate_limiting"), expect="a positive number")
    )
    root: Sampling | None = field(default=None, metadata=_meta(kinds=("parent_based",)))


@dataclass(frozen=True, kw_only=True)
class OtlpExporter:
    endpoint: str | None = None
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    headers: dict[str, str] = field(default_factory=dict, metadata=_meta(secret=True))
    timeout: float = field(default=10.0, metadata=_meta(unit="duration"))


@dataclass(frozen=True, kw_only=True)
class JaegerAgent:
    host: str = "127.0.0.1"
    port: int = field(default=6831, metadata=PORT)
    max_packet_size: int = field(default=65000, metadata=POSITIVE)


@dataclass(frozen=True, kw_only=True)
class JaegerExporter:
    endpoint: str | None = None
    agent: JaegerAgent | None = None


@dataclass(frozen=True, kw_only=True)
class ZipkinLocalEndpoint:
    service_name: str | None = None
    ipv4: str | None = None
    port: int | None = field(default=None, metadata=PORT)


@dataclass(frozen=True, kw_only=True)
class ZipkinExporter:
    endpoint: str = "http://localhost:9411/api/v2/spans"
    local_endpoint: ZipkinLocalEndpoint | None = None


@dataclass(frozen=True, kw_only=True)
class TracingExporters:
    otlp: OtlpExporter | None = None
    jaeger: JaegerExporter | None = None
    zipkin: ZipkinExporter | None = None


@dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """The bounded queue between the request path and every span exporter."""

    max_queue_size: int = field(default=2048, metadata=POSITIVE)
    # Estimated bytes of queued spans (and the batch being exported); past this, dropped.
    max_queue_bytes: int = field(default=4 * 1024 * 1024, metadata=POSITIVE_SIZE)
    max_export_batch_size: int = field(default=512, metadata=POSITIVE)
    schedule_delay: float = field(default=1.0, metadata=_meta(unit="duration"))
    export_timeout: float = field(default=30.0, metadata=_meta(unit="duration"))


def _networks(value: tuple[str, ...]) -> bool:
    import ipaddress

    try:
        for network in value:
            ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class TrustSettings:
    """What to do with a caller's trace context: ``continue`` it (the default), ``restart`` (a
    new root trace linked to the caller's span) or ``ignore`` it. Callers from
    ``trusted_networks`` (client address CIDRs) or sending one of ``trusted_headers`` with its
    value are always continued."""

    type: Literal["continue", "restart", "ignore"] = "continue"
    trusted_networks: tuple[str, ...] = field(
        default=(),
        metadata=_meta(check=_networks, expect="IP networks such as '10.0.0.0/8' or '::1'"),
    )
    trusted_headers: dict[str, str] = field(default_factory=dict, metadata=_meta(secret=True))


@dataclass(frozen=True, kw_only=True)
class TracingSettings:
    enabled: bool = True
    sampling: Sampling = field(default_factory=Sampling)
    exporters: TracingExporters = field(default_factory=TracingExporters)
    propagation: tuple[Propagator, ...] = ("w3c", "baggage")
    trust: TrustSettings = field(default_factory=TrustSettings)
    resource_attributes: dict[str, str] = field(default_factory=dict)
    batch: BatchSettings = field(default_factory=BatchSettings)


# --- logging ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConsoleSink:
    enabled: bool = True
    # True: coloured key-value lines; False: `logging.format` without colours; None: coloured
    # key-value lines when the stream is a terminal, `logging.format` otherwise.
    pretty: bool | None = None
    stream: Literal["stdout", "stderr"] = "stdout"


@dataclass(frozen=True, kw_only=True)
class FileRotation:
    """Rotate past ``max_size`` bytes, keep ``max_files`` rotated files, gzip them if asked."""

    max_size: int = field(default=100 * 10**6, metadata=_meta(unit="size"))
    max_files: int = field(default=5, metadata=POSITIVE)
    compress: bool = False


@dataclass(frozen=True, kw_only=True)
class FileSink:
    path: str
    rotation: FileRotation = field(default_factory=FileRotation)


def _http_url(value: str) -> bool:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        return False


def _strftime_pattern(value: str) -> bool:
    import time

    try:
        return bool(time.strftime(value, time.gmtime(0)))
    except ValueError:
        return False


def _regexes(value: tuple[str, ...]) -> bool:
    try:
        for pattern in value:
            re.compile(pattern)
    except re.error:
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class ElasticsearchSink:
    """The ``_bulk`` API: a request per ``buffer_size`` events or per ``flush_interval``."""

    url: str = field(metadata=_meta(check=_http_url, expect="an http:// or https:// URL"))
    # The index of each event, from its timestamp (strftime, UTC).
    index_pattern: str = field(
        default="logs-%Y.%m.%d",
        metadata=_meta(check=_strftime_pattern, expect="an index name with strftime codes"),
    )
    buffer_size: int = field(default=1000, metadata=POSITIVE)
    flush_interval: float = field(default=5.0, metadata=_meta(unit="duration"))
    # Events held while Elasticsearch is slow or away; past this new ones are dropped.
    max_buffer: int = field(default=10000, metadata=POSITIVE)
    # The same buffer by its rendered bytes (events being sent included).
    max_buffer_bytes: int = field(default=8 * 1024 * 1024, metadata=POSITIVE_SIZE)
    timeout: float = field(default=10.0, metadata=_meta(unit="duration"))
    # First wait after a failed request, doubled per failure up to max_backoff.
    backoff: float = field(default=1.0, metadata=_meta(unit="duration"))
    max_backoff: float = field(default=30.0, metadata=_meta(unit="duration"))
    # Sent as `Authorization: ApiKey <api_key>`; user:password in the URL is Basic auth.
    api_key: str | None = field(default=None, metadata=_meta(secret=True))


@dataclass(frozen=True, kw_only=True)
class OtlpLogSink:
    """OTLP logs to an OpenTelemetry Collector: a request per ``batch_size`` records or per
    ``flush_interval``; ``endpoint`` defaults to ``http://localhost:4318`` (``/v1/logs`` is
    added) or, for ``grpc``, ``http://localhost:4317``."""

    endpoint: str | None = field(
        default=None, metadata=_meta(check=_http_url, expect="an http:// or https:// URL")
    )
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    headers: dict[str, str] = field(default_factory=dict, repr=False, metadata=_meta(secret=True))
    timeout: float = field(default=10.0, metadata=PUSH_DURATION)
    batch_size: int = field(default=512, metadata=POSITIVE)
    flush_interval: float = field(default=1.0, metadata=PUSH_DURATION)
    # Records held while the Collector is slow or away (and their encoded bytes, the batch
    # being sent included); past either, new ones are dropped.
    max_buffer: int = field(default=10000, metadata=POSITIVE)
    max_buffer_bytes: int = field(default=8 * 1024 * 1024, metadata=POSITIVE_SIZE)
    # First wait after a failed export, doubled per failure up to max_backoff.
    backoff: float = field(default=1.0, metadata=_meta(unit="duration"))
    max_backoff: float = field(default=30.0, metadata=_meta(unit="duration"))


@dataclass(frozen=True, kw_only=True)
class LoggingSinks:
    console: ConsoleSink | None = field(default_factory=ConsoleSink)
    file: FileSink | None = None
    elasticsearch: ElasticsearchSink | None = None
    otlp: OtlpLogSink | None = None


@dataclass(frozen=True, kw_only=True)
class LogProcessor:
    """``add_fields {fields}``, ``filter {field, exclude}``, ``sample {every, events}`` or
    ``redact {keys, patterns}``, applied in the configured order (``redact`` runs last when it
    is not listed: it is always on)."""

    type: Literal["add_fields", "filter", "sample", "redact"]
    fields: dict[str, Any] = dataclasses.field(
        default_factory=dict, metadata=_meta(kinds=("add_fields",))
    )
    # The name `field` is the configuration key; below it, dataclasses.field is spelled out.
    field: str | None = dataclasses.field(default=None, metadata=_meta(kinds=("filter",)))
    exclude: tuple[str, ...] = dataclasses.field(default=(), metadata=_meta(kinds=("filter",)))
    # sample: keep 1 in `every` events per event name (those matching `events`, or all);
    # warnings and errors are always kept.
    every: int | None = dataclasses.field(default=None, metadata={**POSITIVE, "kinds": ("sample",)})
    events: tuple[str, ...] = dataclasses.field(default=(), metadata=_meta(kinds=("sample",)))
    # redact: key names or globs redacted on top of the built-in ones, and regular
    # expressions whose matches in string values are redacted.
    keys: tuple[str, ...] = dataclasses.field(default=(), metadata=_meta(kinds=("redact",)))
    patterns: tuple[str, ...] = dataclasses.field(
        default=(),
        metadata=_meta(kinds=("redact",), check=_regexes, expect="regular expressions"),
    )


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    level: LogLevel = "info"
    format: Literal["json", "console"] = "json"
    # Per logger name, e.g. {"sqlalchemy.engine": "warning"}.
    levels: dict[str, LogLevel] = field(default_factory=dict)
    sinks: LoggingSinks = field(default_factory=LoggingSinks)
    processors: tuple[LogProcessor, ...] = ()
    request_log: bool = True
    # The server's own access line under the launcher (uvicorn, gunicorn, hypercorn,
    # werkzeug): "drop" it, or "json" (one line through the pipeline, query secrets redacted);
    # "auto" drops it while request_log covers the request. (Not "off": YAML reads that as
    # false.)
    server_access_log: Literal["auto", "drop", "json"] = "auto"
    # Events waiting for the writer thread; past this they are dropped and counted.
    queue_size: int = field(default=10000, metadata=POSITIVE)
    # The same queue by the events' estimated size (from their fields); past this, dropped.
    queue_bytes: int = field(default=8 * 1024 * 1024, metadata=POSITIVE_SIZE)


# --- health ----------------------------------------------------------------------------------


def _percent(value: float) -> bool:
    return 0 < value <= 100


POSITIVE_DURATION = _meta(
    unit="duration", check=_positive, expect="a positive duration such as '500ms' or '10s'"
)


@dataclass(frozen=True, kw_only=True)
class HealthCheckTarget:
    """What one health check looks at: ``tcp {host, port}``, ``http {url, method,
    expected_status, headers}``, ``script {command}``, ``disk {path, min_free,
    min_free_percent}``, ``sqlalchemy {url}`` (``SELECT 1``), ``redis {url}`` (``PING``) or
    ``function {target: "module:function"}``."""

    type: Literal["tcp", "http", "script", "disk", "sqlalchemy", "redis", "function"]
    host: str | None = field(default=None, metadata=_meta(kinds=("tcp",)))
    port: int | None = field(default=None, metadata={**PORT, "kinds": ("tcp",)})
    url: str | None = field(
        default=None, metadata=_meta(kinds=("http", "sqlalchemy", "redis"), secret=True)
    )
    method: str = field(default="GET", metadata=_meta(kinds=("http",)))
    expected_status: int = field(default=200, metadata=_meta(kinds=("http",)))
    headers: dict[str, str] = field(
        default_factory=dict, metadata=_meta(kinds=("http",), secret=True)
    )
    command: str | None = field(default=None, metadata=_meta(kinds=("script",)))
    path: str | None = field(default=None, metadata=_meta(kinds=("disk",)))
    min_free: int | None = field(default=None, metadata=_meta(unit="size", kinds=("disk",)))
    min_free_percent: float | None = field(
        default=None,
        metadata=_meta(check=_percent, expect="a percentage above 0, at most 100", kinds=("disk",)),
    )
    target: str | None = field(default=None, metadata=_meta(kinds=("function",)))
    # The check's own limit; the shorter of this and the check's `timeout` applies.
    timeout: float | None = field(default=None, metadata=POSITIVE_DURATION)


@dataclass(frozen=True, kw_only=True)
class HealthCheck:
    name: str
    check: HealthCheckTarget
    interval: float = field(default=10.0, metadata=POSITIVE_DURATION)
    timeout: float = field(default=5.0, metadata=POSITIVE_DURATION)
    unhealthy_threshold: int = field(default=3, metadata=POSITIVE)
    healthy_threshold: int = field(default=1, metadata=POSITIVE)
    # Only critical checks decide readiness; the others are reported (and logged) only.
    critical: bool = True


@dataclass(frozen=True, kw_only=True)
class HealthSettings:
    checks: tuple[HealthCheck, ...] = ()
    readiness_endpoint: str = field(default="/ready", metadata=URL_PATH)
    liveness_endpoint: str = field(default="/health", metadata=URL_PATH)
    # Under ASGI: /health answers 503 while the event loop runs timers later than this.
    max_event_loop_lag: float | None = field(default=None, metadata=POSITIVE_DURATION)


# --- HTTP request handling -------------------------------------------------------------------


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _header_names(value: tuple[str, ...]) -> bool:
    return all(_HEADER_NAME.match(name) for name in value)


HEADER_NAMES = _meta(check=_header_names, expect="HTTP header names such as 'X-Tenant'")


@dataclass(frozen=True, kw_only=True)
class CaptureHeaders:
    """Headers recorded on server spans, as OpenTelemetry names them: ``request`` values in
    ``http.request.header.<lower-case name>``, ``response`` values in
    ``http.response.header.<lower-case name>`` (lists of strings). Credentials (and
    ``http.redact_headers``) are recorded as ``REDACTED``."""

    request: tuple[str, ...] = field(default=(), metadata=HEADER_NAMES)
    response: tuple[str, ...] = field(default=(), metadata=HEADER_NAMES)


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    # Paths (exact, or prefixes ending in '*') kept out of spans, request metrics and request logs,
    # in addition to the metrics and health endpoints, which are always excluded.
    exclude_paths: tuple[str, ...] = ()
    # Header names and query parameters redacted on top of the built-in sensitive ones.
    redact_headers: tuple[str, ...] = field(default=(), metadata=HEADER_NAMES)
    redact_query_params: tuple[str, ...] = ()
    request_id_header: str = "X-Request-ID"
    capture_headers: CaptureHeaders = field(default_factory=CaptureHeaders)


# --- the embedded store ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """The local SQLite store that the ``telemetry`` CLI reads. ``enabled: auto`` (the default)
    writes spans there when no span exporter is configured and log events when no file,
    Elasticsearch or OTLP sink is; ``true`` always, ``false`` never."""

    enabled: Literal["auto", "true", "false"] = "auto"
    path: str = "./.telemetry/telemetry.db"
    retention: float = field(default=15 * 86400.0, metadata=POSITIVE_DURATION)
    # How long a writer waits for another process's write lock before the batch is dropped.
    busy_timeout: float = field(default=5.0, metadata=POSITIVE_DURATION)
    # Past this size (pages in use) the oldest spans and log lines are deleted first.
    max_size: int = field(default=1 << 30, metadata=POSITIVE_SIZE)


# --- alert rules (alerting.rules; telemetry_web.alerting holds the catalogue) -----------------

# `for` is a Python keyword: the field is `for_`, its configuration key `for`.
_FOR = {
    **_meta(unit="duration", check=lambda v: v >= 0, expect="a duration such as '5m' or 0"),
    "key": "for",
}
_RULE_WINDOW = _meta(unit="duration", check=_positive, expect="a positive duration such as '5m'")


@dataclass(frozen=True, kw_only=True)
class AlertRuleSettings:
    """One built-in alert: ``enabled``, how long the condition must hold (``for``), the window
    rates and quantiles are computed over, and the ``severity`` label. ``None``: the
    catalogue's default for this kind (``telemetry_web.alerting``)."""

    enabled: bool = True
    for_: float | None = field(default=None, metadata=_FOR)
    window: float | None = field(default=None, metadata=_RULE_WINDOW)
    severity: str | None = field(
        default=None,
        metadata=_meta(check=lambda v: bool(v.strip()), expect="a severity such as 'critical'"),
    )


@dataclass(frozen=True, kw_only=True)
class RatioAlertRule(AlertRuleSettings):
    threshold: float | None = field(
        default=None,
        metadata=_meta(check=lambda v: 0 <= v <= 1, expect="a ratio from 0 to 1 such as 0.05"),
    )


@dataclass(frozen=True, kw_only=True)
class LatencyAlertRule(AlertRuleSettings):
    threshold: float | None = field(
        default=None,
        metadata=_meta(unit="duration", check=_positive, expect="a latency such as '500ms'"),
    )


@dataclass(frozen=True, kw_only=True)
class CountAlertRule(AlertRuleSettings):
    threshold: float | None = field(
        default=None,
        metadata=_meta(check=lambda v: v >= 0, expect="a number of at least 0"),
    )


@dataclass(frozen=True, kw_only=True)
class AlertRules:
    """``alerting.rules``: the built-in alerts by kind; ``kind: false`` switches one off."""

    error_ratio: RatioAlertRule | None = field(default_factory=RatioAlertRule)
    latency_p95: LatencyAlertRule | None = field(default_factory=LatencyAlertRule)
    latency_p99: LatencyAlertRule | None = field(default_factory=LatencyAlertRule)
    readiness: AlertRuleSettings | None = field(default_factory=AlertRuleSettings)
    health_check: AlertRuleSettings | None = field(default_factory=AlertRuleSettings)
    spans_dropped: CountAlertRule | None = field(default_factory=CountAlertRule)
    logs_dropped: CountAlertRule | None = field(default_factory=CountAlertRule)
    metrics_dropped: CountAlertRule | None = field(default_factory=CountAlertRule)
    # threshold: the fewest live workers that is not an alert (default 1: none left).
    workers: CountAlertRule | None = field(default_factory=CountAlertRule)


# --- alerting ---------------------------------------------------------------------------------


def _receiver_name(value: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_.\-]+", value) is not None


@dataclass(frozen=True, kw_only=True)
class AlertReceiver:
    """Where embedded alerting sends notifications: ``webhook`` (the Alertmanager webhook JSON
    to ``url``), ``slack`` (an incoming-webhook ``url``), ``email`` (SMTP to ``to``) or ``log``
    (one line through the log pipeline)."""

    name: str = field(
        metadata=_meta(check=_receiver_name, expect="a name of letters, digits, '_', '-', '.'")
    )
    type: Literal["webhook", "slack", "email", "log"]
    url: str | None = field(
        default=None,
        metadata=_meta(
            check=_http_url, expect="an http:// or https:// URL", kinds=("webhook", "slack")
        ),
    )
    headers: dict[str, str] = field(
        default_factory=dict, repr=False, metadata=_meta(secret=True, kinds=("webhook",))
    )
    timeout: float = field(default=10.0, metadata=PUSH_DURATION)
    # email: the SMTP server, STARTTLS (unless tls: false) and LOGIN/PLAIN auth when given.
    smtp_host: str | None = field(default=None, metadata=_meta(kinds=("email",)))
    smtp_port: int = field(default=587, metadata={**PORT, "kinds": ("email",)})
    sender: str | None = field(default=None, metadata=_meta(kinds=("email",)))
    to: tuple[str, ...] = field(default=(), metadata=_meta(kinds=("email",)))
    username: str | None = field(default=None, metadata=_meta(kinds=("email",)))
    password: str | None = field(
        default=None, repr=False, metadata=_meta(secret=True, kinds=("email",))
    )
    starttls: bool = field(default=True, metadata=_meta(kinds=("email",)))
    # A CA bundle to verify the SMTP server's certificate with (a private CA, a test server).
    ca_file: str | None = field(default=None, metadata=_meta(kinds=("email",)))


@dataclass(frozen=True, kw_only=True)
class AlertRoute:
    """Alerts whose labels match every entry of ``match`` (``alertname`` included) go to
    ``receiver``; an alert no route matches goes to ``alerting.default_receiver``."""

    receiver: str
    match: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AlertingSettings:
    """Alerting over the store's metric history and the health checks, evaluated by one
    process per host (``enabled: auto``: when the store keeps the metric history)."""

    enabled: Literal["auto", "true", "false"] = "auto"
    interval: float = field(default=15.0, metadata=POSITIVE_DURATION)
    # The built-in alert kinds: thresholds, `for` and windows (the Prometheus rules too).
    rules: AlertRules = field(default_factory=AlertRules)
    # A firing alert is notified again after this long (Alertmanager's repeat_interval).
    repeat_interval: float = field(default=4 * 3600.0, metadata=POSITIVE_DURATION)
    receivers: tuple[AlertReceiver, ...] = ()
    routes: tuple[AlertRoute, ...] = ()
    # "log" is always there (a log line), unless a receiver of that name is configured.
    default_receiver: str = "log"
    # The externalURL and generatorURL base of webhook notifications.
    external_url: str | None = field(
        default=None, metadata=_meta(check=_http_url, expect="an http:// or https:// URL")
    )


# --- the service as a gateway ----------------------------------------------------------------


def _fraction(value: float) -> bool:
    return 0.0 <= value <= 1.0


def _route_pattern(value: str) -> bool:
    return value.startswith(("/", "*", "<")) and value.strip() == value


FRACTION = _meta(check=_fraction, expect="a number from 0 to 1")


@dataclass(frozen=True, kw_only=True)
class GatewayRoute:
    """A per-route policy of ``gateway.routes``: the first whose ``match`` (a route template,
    ``*`` matching any run of characters: ``/api/orders/*``) matches a request's route
    decides; a key left out keeps the gateway-wide value."""

    match: str = field(
        metadata=_meta(
            check=_route_pattern,
            expect="a route template pattern starting with '/' or '*', such as '/api/*'",
        )
    )
    sample_rate: float | None = field(default=None, metadata=FRACTION)
    request_log: bool | None = None
    size_metrics: bool | None = None


@dataclass(frozen=True, kw_only=True)
class GatewayMetrics:
    """Which request metrics the gateway records: the duration histogram, and the body-size
    histograms (request and response) under ``response_size``."""

    request_duration: bool = True
    response_size: bool = True


@dataclass(frozen=True, kw_only=True)
class GatewayTracing:
    """``enabled: false`` traces no request at the gateway; ``sample_rate`` is the share of new
    traces started for routes without a rate of their own (unset: ``tracing.sampling``)."""

    enabled: bool = True
    sample_rate: float | None = field(default=None, metadata=FRACTION)


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """The service as a gateway (``telemetry_web.gateway``); the defaults change nothing."""

    request_logging: bool = True
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    tracing: GatewayTracing = field(default_factory=GatewayTracing)
    routes: tuple[GatewayRoute, ...] = ()


# --- behind a proxy or a sidecar -------------------------------------------------------------


def _probe_paths(value: tuple[str, ...]) -> bool:
    return all(_url_path(path) for path in value)


@dataclass(frozen=True, kw_only=True)
class MeshSettings:
    """Behind a sidecar or a reverse proxy (``telemetry_web.mesh``): ``profile`` (``envoy`` for
    Envoy and Istio, ``linkerd``, ``generic``) brings the mesh's propagation order, headers
    recorded on the server span, trusted proxy addresses and probe paths; a key set here
    replaces the profile's. ``metrics``/``tracing``/``logging``: what each request records."""

    profile: Literal["envoy", "linkerd", "generic"] = "generic"
    metrics: bool = True
    tracing: bool = True
    logging: bool = True
    # Direct peers (CIDRs) whose forwarded client address is believed; unset: the profile's.
    trusted_proxies: tuple[str, ...] | None = field(
        default=None,
        metadata=_meta(check=_networks, expect="IP networks such as '10.0.0.0/8' or '::1'"),
    )
    # The header a trusted proxy writes the client address into (right-most entries first).
    client_address_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    propagation: tuple[Propagator, ...] | None = None
    probe_paths: tuple[str, ...] | None = field(
        default=None,
        metadata=_meta(check=_probe_paths, expect="URL paths starting with '/' (or ending in '*')"),
    )


# --- the whole configuration -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TelemetrySettings:
    """Everything telemetry-web can be told; see the README's configuration reference."""

    service: str = DEFAULT_SERVICE
    # The resource's service.version (spans); OTEL_RESOURCE_ATTRIBUTES may name it instead.
    service_version: str | None = None
    environment: str = "development"
    labels: dict[str, str] = field(
        default_factory=dict,
        metadata=_meta(
            check=_label_names,
            expect="label names made of letters, digits and '_', not starting with '__' and "
            "not one of 'environment', 'le', 'method', 'quantile', 'route', 'service', 'status'",
        ),
    )
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    alerting: AlertingSettings = field(default_factory=AlertingSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    mesh: MeshSettings | None = None
