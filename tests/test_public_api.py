"""The public namespace: what `import telemetry_web` promises."""

from __future__ import annotations

import importlib

import pytest

import telemetry_web
from telemetry_web import semconv as sc


def test_all_is_sorted_and_matches_the_namespace() -> None:
    """Every name in __all__ exists, and __all__ stays sorted so additions are deliberate."""
    assert telemetry_web.__all__ == sorted(telemetry_web.__all__)
    for name in telemetry_web.__all__:
        assert hasattr(telemetry_web, name), name


def test_public_api_is_exactly_this() -> None:
    """Changing the front door is a decision, not an accident."""
    assert set(telemetry_web.__all__) == {
        "ConfigError",
        "MetricRegistrationError",
        "MissingExtraError",
        "Telemetry",
        "TelemetryError",
        "TelemetryMiddleware",
        "TelemetrySettings",
        "__version__",
        "load_settings",
    }


def test_errors_form_one_hierarchy() -> None:
    """Callers can catch every deliberate error with TelemetryError, and the usual bases too."""
    assert issubclass(telemetry_web.ConfigError, telemetry_web.TelemetryError)
    assert issubclass(telemetry_web.ConfigError, ValueError)
    assert issubclass(telemetry_web.MetricRegistrationError, telemetry_web.TelemetryError)
    assert issubclass(telemetry_web.MissingExtraError, ImportError)


# Every public module and exactly what it exports: what users call (documented, used by the
# sample apps, or constructed by users: sinks, checks, outputs, instrumentors). Wiring stays in
# the private modules. `config` and `store` are pinned as their owners left them.
PUBLIC: dict[str, set[str]] = {
    "telemetry_web.alerting": {
        "KINDS", "AlertRule", "Condition", "RecordingRule", "alert_rules", "recording_rules",
    },
    "telemetry_web.cli": {"main"},
    "telemetry_web.config": {
        "HealthSettings", "HttpSettings", "LoggingSettings", "MetricsSettings",
        "SamplingSettings", "TelemetrySettings", "TracingSettings", "load_settings",
        "not_built_yet", "parse_duration", "parse_section", "parse_settings", "parse_size",
        "read_yaml", "settings_to_mapping",
    },
    "telemetry_web.errors": {
        "ConfigError", "MetricRegistrationError", "MissingExtraError", "TelemetryError",
    },
    "telemetry_web.gateway": {
        "Gateway", "GatewayMetricsSettings", "GatewayRouteSettings", "GatewayTelemetryConfig",
        "GatewayTracingSettings", "UpstreamCall", "configure_telemetry",
    },
    "telemetry_web.health": {
        "QUERY_KEY", "Check", "DiskCheck", "FunctionCheck", "Health", "HttpCheck", "Outcome",
        "RedisCheck", "ScriptCheck", "SqlAlchemyCheck", "TcpCheck",
    },
    "telemetry_web.instrumentors": {
        "HttpxInstrumentor", "RedisInstrumentor", "RequestsInstrumentor", "SQLAlchemyInstrumentor",
    },
    "telemetry_web.instrumentors.httpx": {"HttpxInstrumentor"},
    "telemetry_web.instrumentors.redis": {"RedisInstrumentor"},
    "telemetry_web.instrumentors.requests": {"RequestsInstrumentor"},
    "telemetry_web.instrumentors.sqlalchemy": {"SQLAlchemyInstrumentor"},
    "telemetry_web.logging": {
        "ConsoleSink", "ElasticsearchSink", "FileSink", "LogSink", "OtlpLogSink",
        "bind_context", "carry_context", "unbind_context",
    },
    "telemetry_web.mesh": {"MeshSettings", "MeshTelemetryConfig", "configure_telemetry"},
    "telemetry_web.metrics": {"Metric", "MetricBuilder"},
    "telemetry_web.metrics.outputs": {
        "DatadogOutput", "ExportError", "OtlpMetricsOutput", "PushOutput", "RemoteWriteOutput",
        "Snapshot", "StatsdOutput",
    },
    "telemetry_web.store": {
        "LogQuery", "LogRecord", "MetricFamily", "MetricHistory", "MetricSnapshotter",
        "QueryRow", "RoutePoint", "RouteStats", "SQLiteStore", "SpanRecord", "StoreError",
        "StoreLogSink", "StoreSpanExporter", "StoreUnavailable", "TracePage", "TraceQuery",
        "TraceSummary", "TracingManager", "metric_history", "store_for_logs",
        "store_for_metrics", "store_for_spans",
    },
    "telemetry_web.testing": {"CapturedTelemetry", "InMemoryLogSink", "capture_telemetry"},
    "telemetry_web.tracing": {"TelemetrySpan", "TelemetryTracer"},
    "telemetry_web.tracing.jaeger": {"JaegerAgentExporter", "JaegerCollectorExporter"},
    "telemetry_web.ui": {"create_app"},
    # The framework modules.
    "telemetry_web.asgi": {"TelemetryMiddleware"},
    "telemetry_web.django": {"DjangoTelemetryMiddleware", "get_telemetry", "set_telemetry"},
    "telemetry_web.flask": {"FlaskState", "FlaskTelemetry"},
    "telemetry_web.wsgi": {"TelemetryWSGIMiddleware", "WSGIRouteResolver"},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_module_exports_exactly_this(name: str) -> None:
    """A subpackage's front door changes by decision: __all__ is pinned, every name exists."""
    module = importlib.import_module(name)
    assert set(module.__all__) == PUBLIC[name]
    assert len(module.__all__) == len(set(module.__all__)), "a name listed twice"
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.{exported}"


def test_semconv_holds_names_only() -> None:
    """telemetry_web.semconv (no __all__: every public name is part of it) holds constants and
    exception_type, nothing imported or built."""
    public = {n: v for n, v in vars(sc).items() if not n.startswith("_")}
    odd = {n for n, v in public.items() if not (n.isupper() or v is sc.exception_type)}
    assert odd == {"Final", "annotations"}, odd  # typing.Final and the __future__ import


def test_no_public_class_name_means_two_things() -> None:
    """Across every public module, one class name is one class: a user reading a name never
    has to ask which of two it is (config.ConsoleSinkSettings, not a second ConsoleSink)."""
    seen: dict[str, dict[int, str]] = {}
    for name in ["telemetry_web", *sorted(PUBLIC)]:
        module = importlib.import_module(name)
        for exported in module.__all__:
            value = getattr(module, exported)
            if isinstance(value, type):
                seen.setdefault(exported, {})[id(value)] = f"{name}.{exported}"
    clashes = {k: sorted(v.values()) for k, v in seen.items() if len(v) > 1}
    assert clashes == {}
