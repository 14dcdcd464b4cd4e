"""What each ``mesh.profile`` brings, and the settings a ``mesh:`` section makes effective.

Where these come from:

- **envoy** (Envoy, Istio): Envoy's Zipkin tracer, Istio's default, sends B3 multi-header
  (``x-b3-*``) and Istio's OpenTelemetry provider W3C ``traceparent``, so both are read, B3
  first. The router sets ``x-envoy-expected-rq-timeout-ms`` and (Istio turns on
  ``include_request_attempt_count``) ``x-envoy-attempt-count`` on the request it forwards, and
  ``x-envoy-upstream-service-time`` on the response it returns (seen on a response the app
  passes on). The inbound sidecar connects to the app from ``127.0.0.6`` (Istio 1.10 and
  later) or ``127.0.0.1``.
- **linkerd**: the proxy reads and writes W3C and B3 multi-header; its inbound proxy adds
  ``l5d-client-id`` (the caller's mTLS identity) and passes ``l5d-dst-canonical``,
  ``l5d-dst-override``, ``l5d-orig-proto``, ``l5d-remote-ip`` and ``l5d-require-id``; it
  connects to the app from ``127.0.0.1``.
- **generic** (Caddy, HAProxy, nginx, a load balancer): ``tracing.propagation`` as configured,
  no proxy trusted until ``trusted_proxies`` names one.

Probe paths: neither sidecar requests anything on the app's port by itself. Istio rewrites
the pod's HTTP probes to ``/app-health/<container>/livez|readyz`` on pilot-agent's port and
pilot-agent forwards each to the path the pod spec declares; its ``/healthz/ready`` and Envoy's
``/stats/prometheus`` are on 15021 and 15090, Linkerd's ``/ready``, ``/live`` and ``/metrics``
on 4191. What reaches the app are the probes of its own pod spec, so the mesh profiles keep
the usual Kubernetes probe paths out of telemetry (``/healthz``, ``/livez``, ``/readyz``; the
built-in ``/health``, ``/ready`` and ``/metrics`` always are): ``probe_paths`` names others.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from ..config._model import (
    CaptureHeadersSettings,
    MeshSettings,
    SamplingSettings,
    TelemetrySettings,
)

__all__ = ["PROFILES", "Profile", "effective_settings", "trusted_proxies"]

KUBERNETES_PROBES = ("/healthz", "/livez", "/readyz")


class Profile(NamedTuple):
    propagation: tuple[Any, ...] | None  # None: tracing.propagation as configured
    trusted_proxies: tuple[str, ...]
    request_headers: tuple[str, ...]  # recorded as http.request.header.<name>
    response_headers: tuple[str, ...]  # recorded as http.response.header.<name>
    probe_paths: tuple[str, ...]


PROFILES: dict[str, Profile] = {
    "envoy": Profile(
        propagation=("b3multi", "w3c", "baggage"),
        trusted_proxies=("127.0.0.6/32", "127.0.0.1/32", "::1/128"),
        request_headers=(
            "x-envoy-attempt-count",
            "x-envoy-expected-rq-timeout-ms",
            "x-envoy-upstream-service-time",
        ),
        response_headers=("x-envoy-upstream-service-time",),
        probe_paths=KUBERNETES_PROBES,
    ),
    "linkerd": Profile(
        propagation=("w3c", "b3multi", "baggage"),
        trusted_proxies=("127.0.0.1/32", "::1/128"),
        request_headers=(
            "l5d-client-id",
            "l5d-dst-canonical",
            "l5d-dst-override",
            "l5d-orig-proto",
            "l5d-remote-ip",
            "l5d-require-id",
        ),
        response_headers=(),
        probe_paths=KUBERNETES_PROBES,
    ),
    "generic": Profile(
        propagation=None,
        trusted_proxies=(),
        request_headers=(),
        response_headers=(),
        probe_paths=(),
    ),
}


def trusted_proxies(mesh: MeshSettings) -> tuple[str, ...]:
    """The networks whose forwarded client address is believed."""
    if mesh.trusted_proxies is not None:
        return mesh.trusted_proxies
    return PROFILES[mesh.profile].trusted_proxies


def effective_settings(settings: TelemetrySettings) -> TelemetrySettings:
    """``settings`` with the ``mesh:`` section's additions: its propagation order and a
    parent-based sampler (``mesh.tracing``), its headers captured and its probe paths
    excluded; ``settings`` itself when there is no ``mesh:`` section."""
    mesh = settings.mesh
    if mesh is None:
        return settings
    profile = PROFILES[mesh.profile]
    tracing = settings.tracing
    if mesh.tracing:
        propagation = mesh.propagation if mesh.propagation is not None else profile.propagation
        tracing = dataclasses.replace(
            tracing,
            propagation=propagation if propagation is not None else tracing.propagation,
            sampling=_honour_parent(tracing.sampling),
        )
    http = settings.http
    probes = mesh.probe_paths if mesh.probe_paths is not None else profile.probe_paths
    captured = http.capture_headers
    http = dataclasses.replace(
        http,
        exclude_paths=_joined(http.exclude_paths, probes),
        capture_headers=CaptureHeadersSettings(
            request=_joined(captured.request, profile.request_headers),
            response=_joined(captured.response, profile.response_headers),
        ),
    )
    return dataclasses.replace(settings, tracing=tracing, http=http)


def _honour_parent(sampling: SamplingSettings) -> SamplingSettings:
    """The sidecar decided whether the trace is sampled (``x-b3-sampled``, the ``traceparent``
    flags): a sampler that would decide again is put under ``parent_based`` as its root."""
    if sampling.type in ("parent_based", "rate_limiting"):  # both follow a sampled parent
        return sampling
    return SamplingSettings(type="parent_based", root=sampling)


def _joined(first: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *more)))
