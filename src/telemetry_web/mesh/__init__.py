"""Behind a service-mesh sidecar or a reverse proxy.

Usage::

    from telemetry_web import Telemetry, mesh

    telemetry = Telemetry(service="orders")
    mesh.configure_telemetry(
        telemetry,
        mesh.MeshTelemetryConfig(profile="envoy", metrics=True, tracing=True, logging=True),
    )

or, in the configuration file, ``mesh: {profile: envoy}``. A profile (``envoy`` for Envoy and
Istio, ``linkerd``, ``generic``) brings:

- the mesh's propagation order (envoy: B3 multi-header, then W3C; linkerd: W3C, then B3), the
  first format carrying a context winning, and a parent-based sampler, so the sidecar's
  sampling decision (``x-b3-sampled``, the ``traceparent`` flags) is the app's;
- its headers on the server span, through ``http.capture_headers`` (``x-envoy-attempt-count``,
  ``x-envoy-expected-rq-timeout-ms``, ``x-envoy-upstream-service-time``; ``l5d-client-id``
  and the other ``l5d-*`` request headers), ``x-request-id`` kept as the request id;
- the client address from ``X-Forwarded-For`` (or ``Forwarded``) when the direct peer is one
  of ``trusted_proxies`` (the sidecar's loopback addresses by default), the peer then being
  ``network.peer.address``;
- the probe paths kept out of telemetry (``probe_paths``).

``metrics``, ``tracing`` and ``logging`` say what each request records (RED metrics, the
server span, the request log line). See ``_profiles.py`` for where each default comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config import parse_section
from ..config._model import MeshSettings

if TYPE_CHECKING:
    from .._engine import Telemetry

__all__ = ["MeshSettings", "MeshTelemetryConfig", "configure_telemetry"]

# The name the seed API gives the settings; the same class as the `mesh:` section's.
MeshTelemetryConfig = MeshSettings


def configure_telemetry(
    telemetry: Telemetry, config: MeshSettings | Mapping[str, Any] | None = None
) -> None:
    """Apply ``config`` (the ``mesh:`` section: settings, or a mapping shaped like it; None:
    the ``generic`` profile's defaults) to ``telemetry``: its extractor, sampler and request
    lifecycle are rebuilt at once.

    Raises:
        ConfigError: ``config`` is a mapping with an invalid key, naming its ``mesh.`` path.
    """
    if config is None:
        config = MeshSettings()
    elif isinstance(config, Mapping):
        config = parse_section(MeshSettings, config, path="mesh")
    import dataclasses

    with telemetry._lock:
        telemetry.settings = dataclasses.replace(telemetry.settings, mesh=config)
        telemetry.configure_tracing()  # the extractor, the sampler, then the lifecycle
