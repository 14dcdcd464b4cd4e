"""The service as a gateway: per-route telemetry policies and upstream calls.

Configure a Telemetry for a gateway (the seed's builder, in Python)::

    from telemetry_web import Telemetry, gateway
    from telemetry_web.gateway import (
        GatewayMetricsSettings, GatewayRouteSettings, GatewayTelemetryConfig,
        GatewayTracingSettings,
    )

    telemetry = Telemetry(service="edge")
    gw = gateway.configure_telemetry(telemetry, GatewayTelemetryConfig(
        request_logging=True,
        metrics=GatewayMetricsSettings(request_duration=True, response_size=True),
        tracing=GatewayTracingSettings(enabled=True, sample_rate=0.1),
        routes=(GatewayRouteSettings(match="/ping", sample_rate=0.0, request_log=False),),
    ))

or with the ``gateway:`` section of the configuration file (the same keys), applied by
``Telemetry`` itself. Per-route policies: the first ``routes`` entry whose ``match`` (a route
template, ``*`` for any characters) matches the request's route sets its sample rate (new
traces only: a caller's sampled decision is kept), request log line and body-size metrics.

Upstream calls: ``await gw.send(client, request, upstream="orders", retries=1, timeout=2.0)``
with an ``httpx.AsyncClient``, or, with any HTTP library, ``gw.on_upstream_start(...)`` and
``gw.on_upstream_end(...)`` around the call (``call.retry(reason=...)``,
``call.timeout(seconds)`` in between). Each call is a CLIENT span carrying
``gateway.upstream.name``, counted in ``gateway_upstream_requests_total{upstream,status}``
(``status``: the final response's code, ``timeout`` or ``error``) and timed, retries included,
in ``gateway_upstream_request_duration_seconds{upstream}``. A gateway with its own server loop
records its requests with ``on_request_start``/``on_request_end``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..config._model import (
    GatewayMetricsSettings,
    GatewayRouteSettings,
    GatewaySettings,
    GatewayTracingSettings,
)
from ._hooks import Gateway, UpstreamCall

if TYPE_CHECKING:
    from .._engine import Telemetry

__all__ = [
    "Gateway",
    "GatewayMetricsSettings",
    "GatewayRouteSettings",
    "GatewayTelemetryConfig",
    "GatewayTracingSettings",
    "UpstreamCall",
    "configure_telemetry",
]

# The name for the ``gateway`` section's settings (telemetry_web.config: GatewaySettings).
GatewayTelemetryConfig = GatewaySettings


def configure_telemetry(
    telemetry: Telemetry, config: GatewaySettings | None = None, /, **changes: object
) -> Gateway:
    """Apply ``config`` (default: the ``gateway`` section already loaded) to ``telemetry``
    and return the :class:`Gateway` holding its upstream hooks.

    Keyword ``changes`` replace single keys of it: ``configure_telemetry(t, routes=(...))``.
    """
    settings = config if config is not None else telemetry.settings.gateway
    if changes:
        settings = dataclasses.replace(settings, **changes)  # type: ignore[arg-type]
    telemetry.configure_gateway(settings)
    return Gateway(telemetry)


for _public in (Gateway, UpstreamCall):
    _public.__module__ = __name__
