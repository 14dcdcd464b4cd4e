"""Every name telemetry-web puts on the wire: metric, label, span attribute and variable names.

Dashboards, alert rules and probes in ``integrations/`` use these names, and a test checks them.
"""

from __future__ import annotations

from typing import Final

# --- environment variables -------------------------------------------------------------------
ENV_PREFIX: Final = "TELEMETRY_"
ENV_CONFIG: Final = "TELEMETRY_CONFIG"
# Read by the zero-code launcher (`telemetry run`), not a configuration key.
ENV_DISABLED_INSTRUMENTATIONS: Final = "TELEMETRY_DISABLED_INSTRUMENTATIONS"

# --- HTTP server metrics, default naming -----------------------------------------------------
HTTP_REQUESTS_TOTAL: Final = "http_requests_total"
HTTP_REQUEST_DURATION: Final = "http_request_duration_seconds"
HTTP_REQUESTS_IN_PROGRESS: Final = "http_requests_in_progress"
HTTP_REQUEST_SIZE: Final = "http_request_size_bytes"
HTTP_RESPONSE_SIZE: Final = "http_response_size_bytes"
LABEL_METHOD: Final = "method"
LABEL_ROUTE: Final = "route"
LABEL_STATUS: Final = "status"
LABEL_SERVICE: Final = "service"
LABEL_ENVIRONMENT: Final = "environment"

# --- HTTP server metrics, `metrics.naming: otel` (stable semantic conventions, as Prometheus
# translates them: dots become underscores, the unit is appended) -----------------------------
OTEL_HTTP_SERVER_DURATION: Final = "http_server_request_duration_seconds"
OTEL_HTTP_SERVER_ACTIVE: Final = "http_server_active_requests"
OTEL_HTTP_SERVER_REQUEST_SIZE: Final = "http_server_request_body_size_bytes"
OTEL_HTTP_SERVER_RESPONSE_SIZE: Final = "http_server_response_body_size_bytes"
OTEL_LABEL_METHOD: Final = "http_request_method"
OTEL_LABEL_ROUTE: Final = "http_route"
OTEL_LABEL_STATUS: Final = "http_response_status_code"
OTEL_LABEL_SCHEME: Final = "url_scheme"

# The semantic conventions' recommended boundaries for http.server.request.duration (seconds).
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
SIZE_BUCKETS: Final = (100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0)

# --- telemetry-web's own health --------------------------------------------------------------
LOG_EVENTS_DROPPED: Final = "telemetry_log_events_dropped_total"
# Its `sink` label values (a custom sink adds its `name`) and `reason` label values.
LOG_DROP_SINKS: Final = ("queue", "pipeline", "console", "file", "elasticsearch", "otlp", "store")
LOG_DROP_REASONS: Final = (
    "queue_full", "processor_error", "sink_error", "buffer_full", "rejected", "shutdown",
)  # fmt: skip
SPANS_DROPPED: Final = "telemetry_spans_dropped_total"
# Samples a metric output (remote write, StatsD, Datadog, OTLP) collected and did not deliver,
# by `exporter` (the output's name) and `reason`.
METRICS_DROPPED: Final = "telemetry_metrics_dropped_total"
# Alert notifications not delivered by embedded alerting, by `receiver` and `reason`
# (queue_full, failed, shutdown).
ALERT_NOTIFICATIONS_DROPPED: Final = "telemetry_alert_notifications_dropped_total"
METRIC_DROP_REASONS: Final = ("export_failed", "rejected", "shutdown")

# --- health checks (health/) -----------------------------------------------------------------
HEALTH_CHECK_STATUS: Final = "health_check_status"  # gauge: 1 healthy, 0 pending or unhealthy
HEALTH_CHECK_DURATION: Final = "health_check_duration_seconds"
LABEL_CHECK: Final = "check"

# --- route label values ----------------------------------------------------------------------
ROUTE_UNMATCHED: Final = "<unmatched>"
#: The service name when nothing names one (OpenTelemetry's own default).
DEFAULT_SERVICE: Final = "unknown_service"

# --- span attributes (OpenTelemetry HTTP semantic conventions) --------------------------------
ATTR_HTTP_METHOD: Final = "http.request.method"
ATTR_HTTP_METHOD_ORIGINAL: Final = "http.request.method_original"
ATTR_HTTP_ROUTE: Final = "http.route"
ATTR_HTTP_STATUS: Final = "http.response.status_code"
ATTR_URL_PATH: Final = "url.path"
ATTR_URL_QUERY: Final = "url.query"
ATTR_URL_SCHEME: Final = "url.scheme"
ATTR_URL_FULL: Final = "url.full"  # client spans; credentials and sensitive query values redacted
ATTR_SERVER_ADDRESS: Final = "server.address"
ATTR_SERVER_PORT: Final = "server.port"
ATTR_CLIENT_ADDRESS: Final = "client.address"
ATTR_USER_AGENT: Final = "user_agent.original"
ATTR_ERROR_TYPE: Final = "error.type"
ATTR_REQUEST_ID: Final = "http.request.header.x-request-id"
ATTR_NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"

KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)

# Headers and query parameters whose values never reach logs or spans.
SENSITIVE_HEADERS: Final = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization"}
)
SENSITIVE_QUERY_PARAMS: Final = frozenset(
    {"token", "password", "secret", "key", "signature", "code"}
)
REDACTED: Final = "REDACTED"

# --- database and cache client instrumentors (instrumentors/) --------------------------------
DB_CLIENT_OPERATION_DURATION: Final = "db_client_operation_duration_seconds"
DB_CLIENT_CONNECTIONS: Final = "db_client_connections"
DB_CLIENT_CONNECTION_WAIT: Final = "db_client_connection_wait_time_seconds"
LABEL_DB_SYSTEM: Final = "db_system"
LABEL_DB_OPERATION: Final = "operation"
LABEL_DB_POOL: Final = "pool"
LABEL_DB_CONNECTION_STATE: Final = "state"
DB_STATUS_OK: Final = "ok"
DB_STATUS_ERROR: Final = "error"
DB_CONNECTION_STATES: Final = ("used", "idle", "overflow")
# The semantic conventions' recommended boundaries for db.client.operation.duration (seconds).
DB_DURATION_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

ATTR_DB_SYSTEM: Final = "db.system"
ATTR_DB_NAMESPACE: Final = "db.namespace"
ATTR_DB_OPERATION: Final = "db.operation.name"
ATTR_DB_QUERY_TEXT: Final = "db.query.text"
ATTR_DB_QUERY_PARAMETER: Final = "db.query.parameter."  # + the parameter's name or position
ATTR_DB_BATCH_SIZE: Final = "db.operation.batch.size"
ATTR_DB_POOL_NAME: Final = "db.client.connection.pool.name"
ATTR_DB_WAIT_TIME: Final = "db.client.connection.wait_time"  # seconds
ATTR_DB_REDIS_KEY_COUNT: Final = "db.redis.key_count"
ATTR_DB_REDIS_COMMANDS: Final = "db.redis.commands"  # a pipeline's command names, in order
EVENT_DB_CHECKOUT: Final = "db.client.connection.checkout"  # on the span current at checkout

INSTRUMENTATION_SQLALCHEMY: Final = "telemetry_web.sqlalchemy"  # tracer scope and logger name
INSTRUMENTATION_REDIS: Final = "telemetry_web.redis"

# --- outbound HTTP instrumentors (instrumentors/httpx.py, instrumentors/requests.py) ----------
HTTP_CLIENT_REQUEST_DURATION: Final = "http_client_request_duration_seconds"
LABEL_SERVER_ADDRESS: Final = "server_address"
# `status` label value of a call that got no response (connection refused, timeout, ...)
HTTP_CLIENT_STATUS_ERROR: Final = "error"
INSTRUMENTATION_HTTPX: Final = "telemetry_web.httpx"  # tracer scope
INSTRUMENTATION_REQUESTS: Final = "telemetry_web.requests"

# --- the service as a gateway (gateway/) -----------------------------------------------------
GATEWAY_UPSTREAM_REQUESTS: Final = "gateway_upstream_requests_total"
GATEWAY_UPSTREAM_DURATION: Final = "gateway_upstream_request_duration_seconds"
LABEL_UPSTREAM: Final = "upstream"  # the upstream's configured name, never its URL
# `status` label values of an upstream call with no response: its timeout, any other failure
GATEWAY_STATUS_TIMEOUT: Final = "timeout"
ATTR_GATEWAY_UPSTREAM: Final = "gateway.upstream.name"  # on the upstream CLIENT span
ATTR_HTTP_RESEND_COUNT: Final = "http.request.resend_count"
EVENT_GATEWAY_RETRY: Final = "retry"  # attributes: attempt (the one that failed), reason
EVENT_GATEWAY_TIMEOUT: Final = "timeout"  # attributes: timeout (seconds), attempt
INSTRUMENTATION_GATEWAY: Final = "telemetry_web.gateway"  # tracer scope


def exception_type(cls: type) -> str:
    """The ``error.type``/``exception.type`` value of an exception class: its qualified name,
    with the module unless it is a builtin (``ValueError``, ``myapp.errors.Unavailable``)."""
    module = cls.__module__
    return cls.__qualname__ if module in (None, "builtins") else f"{module}.{cls.__qualname__}"
