"""The ``gateway:`` and ``mesh:`` sections: the service as a gateway, behind a sidecar."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ._fields import Propagator, _meta, _url_path
from ._tracing import _networks

# --- the service as a gateway ----------------------------------------------------------------


def _fraction(value: float) -> bool:
    return 0.0 <= value <= 1.0


def _route_pattern(value: str) -> bool:
    return value.startswith(("/", "*", "<")) and value.strip() == value


FRACTION = _meta(check=_fraction, expect="a number from 0 to 1")


@dataclass(frozen=True, kw_only=True)
class GatewayRouteSettings:
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
class GatewayMetricsSettings:
    """Which request metrics the gateway records: the duration histogram, and the body-size
    histograms (request and response) under ``response_size``."""

    request_duration: bool = True
    response_size: bool = True


@dataclass(frozen=True, kw_only=True)
class GatewayTracingSettings:
    """``enabled: false`` traces no request at the gateway; ``sample_rate`` is the share of new
    traces started for routes without a rate of their own (unset: ``tracing.sampling``)."""

    enabled: bool = True
    sample_rate: float | None = field(default=None, metadata=FRACTION)


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """The service as a gateway (``telemetry_web.gateway``); the defaults change nothing."""

    request_logging: bool = True
    metrics: GatewayMetricsSettings = field(default_factory=GatewayMetricsSettings)
    tracing: GatewayTracingSettings = field(default_factory=GatewayTracingSettings)
    routes: tuple[GatewayRouteSettings, ...] = ()


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
