"""The ``tracing:`` section: sampling, exporters, propagation, trust and the batch queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ._fields import PORT, POSITIVE, POSITIVE_SIZE, Propagator, _meta

# --- tracing ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    """``always_on``, ``always_off``, ``ratio {rate}``, ``rate_limiting {rate}`` or
    ``parent_based {root}``."""

    type: Literal["always_on", "always_off", "ratio", "rate_limiting", "parent_based"] = (
        "parent_based"
    )
    rate: float | None = field(
        default=None, metadata=_meta(kinds=("ratio", "rate_limiting"), expect="a positive number")
    )
    root: SamplingSettings | None = field(default=None, metadata=_meta(kinds=("parent_based",)))


@dataclass(frozen=True, kw_only=True)
class OtlpExporterSettings:
    endpoint: str | None = None
    protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    headers: dict[str, str] = field(default_factory=dict, metadata=_meta(secret=True))
    timeout: float = field(default=10.0, metadata=_meta(unit="duration"))


@dataclass(frozen=True, kw_only=True)
class JaegerAgentSettings:
    host: str = "127.0.0.1"
    port: int = field(default=6831, metadata=PORT)
    max_packet_size: int = field(default=65000, metadata=POSITIVE)


@dataclass(frozen=True, kw_only=True)
class JaegerExporterSettings:
    endpoint: str | None = None
    agent: JaegerAgentSettings | None = None


@dataclass(frozen=True, kw_only=True)
class ZipkinLocalEndpointSettings:
    service_name: str | None = None
    ipv4: str | None = None
    port: int | None = field(default=None, metadata=PORT)


@dataclass(frozen=True, kw_only=True)
class ZipkinExporterSettings:
    endpoint: str = "http://localhost:9411/api/v2/spans"
    local_endpoint: ZipkinLocalEndpointSettings | None = None


@dataclass(frozen=True, kw_only=True)
class TracingExportersSettings:
    otlp: OtlpExporterSettings | None = None
    jaeger: JaegerExporterSettings | None = None
    zipkin: ZipkinExporterSettings | None = None


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
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    exporters: TracingExportersSettings = field(default_factory=TracingExportersSettings)
    propagation: tuple[Propagator, ...] = ("w3c", "baggage")
    trust: TrustSettings = field(default_factory=TrustSettings)
    resource_attributes: dict[str, str] = field(default_factory=dict)
    batch: BatchSettings = field(default_factory=BatchSettings)
