"""The typed configuration model: one frozen dataclass per section of the configuration file,
a module per section (``_metrics.py``, ``_tracing.py``, ...), the field metadata that drives
validation in ``_fields.py``."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...semconv import DEFAULT_SERVICE
from ._alerting import (
    AlertingSettings,
    AlertReceiverSettings,
    AlertRouteSettings,
    AlertRuleSettings,
    AlertRulesSettings,
    CountAlertRuleSettings,
    LatencyAlertRuleSettings,
    RatioAlertRuleSettings,
)
from ._fields import (
    LogLevel,
    _label_names,
    _meta,
)
from ._gateway import (
    GatewayMetricsSettings,
    GatewayRouteSettings,
    GatewaySettings,
    GatewayTracingSettings,
    MeshSettings,
)
from ._health import (
    HealthCheckSettings,
    HealthCheckTargetSettings,
    HealthSettings,
)
from ._http import (
    CaptureHeadersSettings,
    HttpSettings,
    StoreSettings,
)
from ._logging import (
    ConsoleSinkSettings,
    ElasticsearchSinkSettings,
    FileRotationSettings,
    FileSinkSettings,
    LoggingSettings,
    LoggingSinksSettings,
    LogProcessorSettings,
    OtlpLogSinkSettings,
)
from ._metrics import (
    DATADOG_SITES,
    BasicAuthSettings,
    MetricRuleSettings,
    MetricsCollectorsSettings,
    MetricsExporterSettings,
    MetricsSettings,
    PrometheusCollectorSettings,
    StatsdCollectorSettings,
)
from ._tracing import (
    BatchSettings,
    JaegerAgentSettings,
    JaegerExporterSettings,
    OtlpExporterSettings,
    SamplingSettings,
    TracingExportersSettings,
    TracingSettings,
    TrustSettings,
    ZipkinExporterSettings,
    ZipkinLocalEndpointSettings,
)

__all__ = [
    "DATADOG_SITES",
    "AlertReceiverSettings",
    "AlertRouteSettings",
    "AlertRuleSettings",
    "AlertRulesSettings",
    "AlertingSettings",
    "BasicAuthSettings",
    "BatchSettings",
    "CaptureHeadersSettings",
    "ConsoleSinkSettings",
    "CountAlertRuleSettings",
    "ElasticsearchSinkSettings",
    "FileRotationSettings",
    "FileSinkSettings",
    "GatewayMetricsSettings",
    "GatewayRouteSettings",
    "GatewaySettings",
    "GatewayTracingSettings",
    "HealthCheckSettings",
    "HealthCheckTargetSettings",
    "HealthSettings",
    "HttpSettings",
    "JaegerAgentSettings",
    "JaegerExporterSettings",
    "LatencyAlertRuleSettings",
    "LogLevel",
    "LogProcessorSettings",
    "LoggingSettings",
    "LoggingSinksSettings",
    "MeshSettings",
    "MetricRuleSettings",
    "MetricsCollectorsSettings",
    "MetricsExporterSettings",
    "MetricsSettings",
    "OtlpExporterSettings",
    "OtlpLogSinkSettings",
    "PrometheusCollectorSettings",
    "RatioAlertRuleSettings",
    "SamplingSettings",
    "StatsdCollectorSettings",
    "StoreSettings",
    "TelemetrySettings",
    "TracingExportersSettings",
    "TracingSettings",
    "TrustSettings",
    "ZipkinExporterSettings",
    "ZipkinLocalEndpointSettings",
]


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
