"""The request path behind a proxy: the forwarded client address, the sidecar's trace format.

The client address is taken from ``X-Forwarded-For`` (or ``Forwarded``) only when the direct
peer is a trusted proxy, read from the right: each proxy appends the address it received the
request from, so the right-most entry that is not itself a trusted proxy is the client (every
entry trusted: the left-most). An entry that is not an IP address (``unknown``, an obfuscated
``_hidden`` node) stops the walk and the peer is kept: nothing a client wrote is believed past
the proxies that vouch for it. The peer is then recorded as ``network.peer.address``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.trace import get_current_span

from .._lifecycle import ActiveRequest, RequestLifecycle, ServerAddress
from ..config._model import TelemetrySettings
from ..tracing._propagation import _EMPTY, MAX_HEADER_LENGTH, Extractor
from ._profiles import trusted_proxies

__all__ = ["ProxiedRequestLifecycle", "SidecarExtractor", "build_extractor", "build_lifecycle",
           "forwarded_client"]  # fmt: skip

ATTR_NETWORK_PEER_ADDRESS = "network.peer.address"
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def build_lifecycle(settings: TelemetrySettings, **kwargs: Any) -> RequestLifecycle:
    """The lifecycle for ``settings`` (effective ones: see ``effective_settings``); ``kwargs``
    are :class:`RequestLifecycle`'s."""
    mesh = settings.mesh
    if mesh is None:
        return RequestLifecycle(**kwargs)
    if not mesh.tracing:
        kwargs["spans"] = None
    if not mesh.metrics:
        kwargs["http_metrics"] = None
    if not mesh.logging:
        kwargs["request_log"] = False
    networks = trusted_proxies(mesh)
    if not networks:
        return RequestLifecycle(**kwargs)
    return ProxiedRequestLifecycle(
        trusted_proxies=networks, client_address_header=mesh.client_address_header, **kwargs
    )


def build_extractor(settings: TelemetrySettings) -> Extractor:
    """The extractor for ``settings`` (effective ones): the sidecar's format first in a mesh."""
    tracing = settings.tracing
    if settings.mesh is None or not settings.mesh.tracing:
        return Extractor(tracing.propagation, tracing.trust)
    return SidecarExtractor(tracing.propagation, tracing.trust)


class ProxiedRequestLifecycle(RequestLifecycle):
    """A :class:`RequestLifecycle` that records the forwarded client address of requests
    whose direct peer is one of ``trusted_proxies``."""

    def __init__(
        self, *, trusted_proxies: Iterable[str], client_address_header: str, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.trusted = _Networks(trusted_proxies)
        self.client_address_header = client_address_header
        self.wanted_headers = self.wanted_headers | {client_address_header}

    def begin(
        self,
        *,
        method: str,
        scheme: str,
        path: str,
        query: str,
        route: str,
        headers: Mapping[str, str],
        client: str | None,
        server: ServerAddress | None = None,
        protocol_version: str | None = None,
        kind: str = "http",
    ) -> ActiveRequest:
        forwarded = headers.get(self.client_address_header)
        original = None
        if forwarded is not None and client and self.trusted.contain(client):
            original = forwarded_client(self.client_address_header, forwarded, self.trusted)
        active = super().begin(
            method=method, scheme=scheme, path=path, query=query, route=route,
            headers=headers, client=original or client, server=server,
            protocol_version=protocol_version, kind=kind,
        )  # fmt: skip
        span = active.span
        if original is not None and span is not None and span.is_recording():
            span.set_attribute(ATTR_NETWORK_PEER_ADDRESS, client)
        return active


class _Networks:
    """Membership of an address in a fixed set of networks (IPv4-mapped IPv6 as IPv4)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self.networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks
        )

    def contain(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.networks)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def forwarded_client(header: str, value: str, trusted: _Networks) -> str | None:
    """The client address ``value`` (of ``x-forwarded-for`` or ``forwarded``) states, past the
    ``trusted`` proxies; None when it states none that can be believed."""
    if len(value) > MAX_HEADER_LENGTH:
        return None
    hops = _forwarded_for(value) if header == "forwarded" else value.split(",")
    client = None
    for hop in reversed(hops):
        ip = _ip(_host(hop.strip()))
        if ip is None:
            return None
        client = str(ip)
        if not trusted.contain(client):
            return client
    return client


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` node of each element of an RFC 7239 ``Forwarded`` value ("" if none)."""
    hops = []
    for element in value.split(","):
        node = ""
        for pair in element.split(";"):
            name, _, text = pair.partition("=")
            if name.strip().lower() == "for":
                node = text.strip().strip('"')
                break
        hops.append(node)
    return hops


def _host(node: str) -> str:
    """The address of ``192.0.2.1``, ``192.0.2.1:4711``, ``[2001:db8::1]:4711`` or ``::1``."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else ""
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node


class SidecarExtractor(Extractor):
    """An :class:`Extractor` for a mesh: the first format in the profile's order that carries
    a valid context wins (the sidecar's own, which it writes on every request), where the
    plain extractor lets two different contexts cancel out. A caller's W3C header that a B3
    sidecar passes on unchanged must not cut the app's span from the mesh's trace."""

    def _extract(self, headers: Mapping[str, str]) -> Context:
        carrier = {
            k: v
            for k, v in headers.items()
            if k in self._context_headers and len(v) <= MAX_HEADER_LENGTH
        }
        chosen: Context | None = None
        for _name, propagator in self._trace_formats:
            context = propagator.extract(carrier, Context())
            if get_current_span(context).get_span_context().is_valid:
                chosen = context
                break
        result = chosen if chosen is not None else Context()
        if self._baggage is not None and "baggage" in carrier:
            result = self._baggage.extract(carrier, result)
        return result if (chosen is not None or "baggage" in carrier) else _EMPTY
