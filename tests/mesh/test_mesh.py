"""telemetry_web.mesh in process: the profiles' propagation order, the sidecar's sampling
decision, the mesh headers on the span, the forwarded client address from trusted proxies
only, probe paths kept out, the signal switches and the ``mesh:`` section's errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from telemetry_web import TelemetryMiddleware, mesh
from telemetry_web.errors import ConfigError
from telemetry_web.mesh._proxy import _Networks, forwarded_client
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
B3_SPAN = "00f067aa0ba902b7"
W3C_TRACE = "0af7651916cd43dd8448eb211c80319c"
W3C_SPAN = "b7ad6b7169203331"
ENVOY_REQUEST_ID = "9b4a2f6e-6d4c-4c1a-9a39-5d1f8e0c7a21"


async def _ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _app(captured: CapturedTelemetry) -> Any:
    routes = [Route("/orders/{order_id}", _ok), Route("/healthz", _ok), Route("/custom-probe", _ok)]
    return TelemetryMiddleware(Starlette(routes=routes), telemetry=captured.telemetry)


@pytest.fixture
def captured() -> Iterator[CapturedTelemetry]:
    """A Telemetry capturing in memory, shut down after the test."""
    made = capture_telemetry({"metrics": {"collectors": {"prometheus": {"enabled": True}}}})
    yield made
    made.close()


def _get(
    captured: CapturedTelemetry, path: str, headers: dict[str, str], peer: str = "127.0.0.6"
) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(captured), client=(peer, 40000))

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get(path, headers=headers)

    import asyncio

    return asyncio.run(call())


def _b3(sampled: str = "1") -> dict[str, str]:
    return {"x-b3-traceid": TRACE, "x-b3-spanid": B3_SPAN, "x-b3-sampled": sampled}


def test_envoy_profile_reads_b3_first_and_a_different_traceparent_does_not_cut_the_trace(
    captured: CapturedTelemetry,
) -> None:
    """Under the envoy profile the sidecar's B3 context is the parent, even when the caller's
    W3C traceparent (passed on by the sidecar) names another trace."""
    mesh.configure_telemetry(captured.telemetry, mesh.MeshTelemetryConfig(profile="envoy"))
    headers = {**_b3(), "traceparent": f"00-{W3C_TRACE}-{W3C_SPAN}-01"}
    assert _get(captured, "/orders/7", headers).status_code == 200
    (span,) = captured.spans()
    assert format(span.context.trace_id, "032x") == TRACE
    assert format(span.parent.span_id, "016x") == B3_SPAN  # type: ignore[union-attr]


def test_linkerd_profile_reads_w3c_first(captured: CapturedTelemetry) -> None:
    """Under the linkerd profile W3C comes first: its context is the parent."""
    mesh.configure_telemetry(captured.telemetry, {"profile": "linkerd"})
    headers = {**_b3(), "traceparent": f"00-{W3C_TRACE}-{W3C_SPAN}-01"}
    _get(captured, "/orders/7", headers, peer="127.0.0.1")
    (span,) = captured.spans()
    assert format(span.context.trace_id, "032x") == W3C_TRACE
    assert format(span.parent.span_id, "016x") == W3C_SPAN  # type: ignore[union-attr]


def test_without_a_mesh_conflicting_formats_still_cancel_out() -> None:
    """The plain extractor is unchanged: B3 and W3C naming different traces start a new one."""
    made = capture_telemetry({"tracing": {"propagation": ["b3multi", "w3c"]}})
    try:
        headers = {**_b3(), "traceparent": f"00-{W3C_TRACE}-{W3C_SPAN}-01"}
        _get(made, "/orders/7", headers)
        (span,) = made.spans()
        assert span.parent is None
    finally:
        made.close()


@pytest.mark.parametrize(
    ("profile", "sampling", "headers", "exported"),
    [
        # the sidecar said "not sampled": even an always-sample configuration follows it
        ("envoy", {"type": "ratio", "rate": 1.0}, _b3("0"), 0),
        ("envoy", "always_on", _b3("0"), 0),
        # the sidecar said "sampled": even a never-sample root follows it
        ("envoy", {"type": "ratio", "rate": 0.0}, _b3("1"), 1),
        ("envoy", "always_off", _b3("1"), 1),
        (
            "linkerd",
            {"type": "ratio", "rate": 1.0},
            {"traceparent": f"00-{W3C_TRACE}-{W3C_SPAN}-00"},
            0,
        ),
        (
            "linkerd",
            {"type": "ratio", "rate": 0.0},
            {"traceparent": f"00-{W3C_TRACE}-{W3C_SPAN}-01"},
            1,
        ),
        # no sidecar decision: the configured sampler decides
        ("envoy", {"type": "ratio", "rate": 0.0}, {}, 0),
        ("envoy", "always_on", {}, 1),
    ],
)
def test_the_sidecar_sampling_decision_is_honoured(
    profile: str, sampling: Any, headers: dict[str, str], exported: int
) -> None:
    """x-b3-sampled and the traceparent flags decide, whatever sampler is configured."""
    made = capture_telemetry({"tracing": {"sampling": sampling}, "mesh": {"profile": profile}})
    try:
        _get(made, "/orders/7", headers, peer="127.0.0.1")
        assert len(made.spans()) == exported
    finally:
        made.close()


def test_envoy_headers_and_request_id_are_recorded(captured: CapturedTelemetry) -> None:
    """x-envoy-* request headers become span attributes; Envoy's x-request-id is the id."""
    mesh.configure_telemetry(captured.telemetry, {"profile": "envoy"})
    headers = {
        "x-envoy-attempt-count": "2",
        "x-envoy-expected-rq-timeout-ms": "15000",
        "x-envoy-upstream-service-time": "12",
        "x-request-id": ENVOY_REQUEST_ID,
    }
    response = _get(captured, "/orders/7", headers)
    assert response.headers["x-request-id"] == ENVOY_REQUEST_ID
    (span,) = captured.spans()
    attributes = dict(span.attributes or {})
    assert attributes["http.request.header.x-envoy-attempt-count"] == ("2",)
    assert attributes["http.request.header.x-envoy-expected-rq-timeout-ms"] == ("15000",)
    assert attributes["http.request.header.x-envoy-upstream-service-time"] == ("12",)
    assert attributes["http.request.header.x-request-id"] == ENVOY_REQUEST_ID
    (line,) = [e for e in captured.logs() if e["event"] == "request"]
    assert line["request_id"] == ENVOY_REQUEST_ID


def test_linkerd_headers_are_recorded(captured: CapturedTelemetry) -> None:
    """l5d-* request headers become span attributes under the linkerd profile."""
    mesh.configure_telemetry(captured.telemetry, {"profile": "linkerd"})
    identity = "web.shop.serviceaccount.identity.linkerd.cluster.local"
    headers = {"l5d-client-id": identity, "l5d-dst-canonical": "orders.shop.svc.cluster.local:80"}
    _get(captured, "/orders/7", headers, peer="127.0.0.1")
    (span,) = captured.spans()
    attributes = dict(span.attributes or {})
    assert attributes["http.request.header.l5d-client-id"] == (identity,)
    assert attributes["http.request.header.l5d-dst-canonical"] == (
        "orders.shop.svc.cluster.local:80",
    )


@pytest.mark.parametrize(
    ("peer", "header", "value", "client", "peer_attribute"),
    [
        ("10.0.0.5", "x-forwarded-for", "203.0.113.7", "203.0.113.7", "10.0.0.5"),
        # a spoofed entry left of the real one is not believed: right-most untrusted wins
        ("10.0.0.5", "x-forwarded-for", "1.1.1.1, 203.0.113.7", "203.0.113.7", "10.0.0.5"),
        # a chain of trusted proxies is walked through
        ("10.0.0.5", "x-forwarded-for", "203.0.113.7, 10.0.0.9", "203.0.113.7", "10.0.0.5"),
        ("10.0.0.5", "x-forwarded-for", "10.0.0.8, 10.0.0.9", "10.0.0.8", "10.0.0.5"),
        ("10.0.0.5", "x-forwarded-for", "203.0.113.7:51234", "203.0.113.7", "10.0.0.5"),
        ("10.0.0.5", "x-forwarded-for", "2001:db8::1", "2001:db8::1", "10.0.0.5"),
        # an untrusted peer: its header is ignored
        ("192.0.2.44", "x-forwarded-for", "203.0.113.7", "192.0.2.44", None),
        # not an address: the peer is kept
        ("10.0.0.5", "x-forwarded-for", "unknown", "10.0.0.5", None),
        ("10.0.0.5", "x-forwarded-for", "", "10.0.0.5", None),
        # the other header is not read
        ("10.0.0.5", "forwarded", "for=203.0.113.7", "10.0.0.5", None),
    ],
)
def test_client_address_is_forwarded_only_by_trusted_proxies(
    peer: str, header: str, value: str, client: str, peer_attribute: str | None
) -> None:
    """client.address is the forwarded one only when the direct peer is a trusted proxy."""
    made = capture_telemetry({"mesh": {"trusted_proxies": ["10.0.0.0/24"]}})
    try:
        _get(made, "/orders/7", {header: value}, peer=peer)
        (span,) = made.spans()
        attributes = dict(span.attributes or {})
        assert attributes["client.address"] == client
        assert attributes.get("network.peer.address") == peer_attribute
        (line,) = [e for e in made.logs() if e["event"] == "request"]
        assert line["client"] == client
    finally:
        made.close()


@pytest.mark.parametrize(
    ("value", "client"),
    [
        ("for=203.0.113.7;proto=https;by=10.0.0.5", "203.0.113.7"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ("for=1.1.1.1, for=203.0.113.7", "203.0.113.7"),
        ("for=203.0.113.7, for=10.0.0.9", "203.0.113.7"),
        ("for=_hidden", None),
        ("proto=https", None),
    ],
)
def test_forwarded_header_is_read_when_configured(value: str, client: str | None) -> None:
    """RFC 7239 for= nodes, right-most untrusted first; obfuscated or missing ones are None."""
    assert forwarded_client("forwarded", value, _Networks(["10.0.0.0/24"])) == client


def test_ipv4_mapped_peer_counts_as_its_ipv4_address() -> None:
    """A dual-stack server's ::ffff:10.0.0.5 peer is the trusted 10.0.0.5."""
    assert _Networks(["10.0.0.0/24"]).contain("::ffff:10.0.0.5")


def test_profile_trusts_the_sidecar_loopback_addresses() -> None:
    """The envoy profile trusts Istio's 127.0.0.6, generic trusts nobody by default."""
    for profile, expected in (("envoy", "203.0.113.7"), ("generic", "127.0.0.6")):
        made = capture_telemetry({"mesh": {"profile": profile}})
        try:
            _get(made, "/orders/7", {"x-forwarded-for": "203.0.113.7"}, peer="127.0.0.6")
            (span,) = made.spans()
            assert dict(span.attributes or {})["client.address"] == expected, profile
        finally:
            made.close()


def test_probe_paths_are_kept_out_of_telemetry() -> None:
    """The mesh profiles' probe paths (and configured ones) record no span, metric or line."""
    made = capture_telemetry({"mesh": {"profile": "envoy"}})
    other = capture_telemetry({"mesh": {"profile": "generic", "probe_paths": ["/custom-probe"]}})
    try:
        assert _get(made, "/healthz", {}).status_code == 200
        assert _get(other, "/custom-probe", {}).status_code == 200
        assert _get(other, "/healthz", {}).status_code == 200
        for each in (made, other):
            assert "/custom-probe" not in each.metrics_text()
        assert made.spans() == []
        assert [e for e in made.logs() if e["event"] == "request"] == []
        assert (
            made.sample("http_requests_total", method="GET", route="/healthz", status="200") is None
        )
        assert [s.name for s in other.spans()] == ["GET /healthz"]
    finally:
        made.close()
        other.close()


def test_signal_switches_turn_off_what_each_request_records() -> None:
    """metrics/tracing/logging false: no RED metrics, no server span, no request line."""
    made = capture_telemetry(
        {"mesh": {"profile": "envoy", "metrics": False, "tracing": False, "logging": False}}
    )
    try:
        _get(made, "/orders/7", {"x-request-id": ENVOY_REQUEST_ID})
        assert made.spans() == []
        assert [e for e in made.logs() if e["event"] == "request"] == []
        assert (
            made.sample(
                "http_requests_total", method="GET", route="/orders/{order_id}", status="200"
            )
            is None
        )
    finally:
        made.close()
    made = capture_telemetry({"mesh": {"profile": "envoy"}})
    try:
        _get(made, "/orders/7", {})
        assert [s.name for s in made.spans()] == ["GET /orders/{order_id}"]
        assert (
            made.sample(
                "http_requests_total", method="GET", route="/orders/{order_id}", status="200"
            )
            == 1.0
        )
    finally:
        made.close()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"profile": "envy"},
            "mesh.profile: expected one of 'envoy', 'linkerd', 'generic' (did you mean 'envoy'?), "
            "got 'envy'",
        ),
        (
            {"trusted_proxies": ["10.0.0.300/8"]},
            "mesh.trusted_proxies: expected IP networks such as '10.0.0.0/8' or '::1', "
            "got ['10.0.0.300/8']",
        ),
        (
            {"probe_paths": ["healthz"]},
            "mesh.probe_paths: expected URL paths starting with '/' (or ending in '*'), "
            "got ['healthz']",
        ),
        (
            {"propagation": ["zipkin"]},
            "mesh.propagation[0]: expected one of 'w3c', 'b3', 'b3multi', 'baggage', got 'zipkin'",
        ),
        (
            {"client_address_header": "x-real-ip"},
            "mesh.client_address_header: expected one of 'x-forwarded-for', 'forwarded', "
            "got 'x-real-ip'",
        ),
        ({"sidecar": "envoy"}, "mesh.sidecar: unknown key"),
    ],
)
def test_invalid_mesh_section_names_key_value_and_expectation(
    section: dict[str, Any], message: str
) -> None:
    """A bad mesh: section is a ConfigError naming the key path, the value and what is valid,
    from the configuration and from configure_telemetry alike."""
    with pytest.raises(ConfigError) as raised:
        capture_telemetry({"mesh": section})
    assert message in str(raised.value)
    made = capture_telemetry()
    try:
        with pytest.raises(ConfigError) as raised:
            mesh.configure_telemetry(made.telemetry, section)
        assert message in str(raised.value)
    finally:
        made.close()


def test_configure_telemetry_applies_and_replaces_the_section(captured: CapturedTelemetry) -> None:
    """configure_telemetry takes effect at once and a later call replaces the profile."""
    telemetry = captured.telemetry
    mesh.configure_telemetry(telemetry, mesh.MeshTelemetryConfig(profile="envoy"))
    assert telemetry.settings.mesh == mesh.MeshSettings(profile="envoy")
    assert "x-envoy-attempt-count" in telemetry.lifecycle.wanted_headers
    mesh.configure_telemetry(telemetry, mesh.MeshTelemetryConfig(profile="linkerd"))
    assert "x-envoy-attempt-count" not in telemetry.lifecycle.wanted_headers
    assert "l5d-client-id" in telemetry.lifecycle.wanted_headers
    assert telemetry.settings.http.capture_headers.request == ()  # the user's own, unchanged


def test_mesh_section_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """TELEMETRY_MESH__* variables configure the section like the file does."""
    monkeypatch.setenv("TELEMETRY_MESH__PROFILE", "envoy")
    monkeypatch.setenv("TELEMETRY_MESH__TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.6")
    made = capture_telemetry(use_env=True)
    try:
        assert made.telemetry.settings.mesh == mesh.MeshSettings(
            profile="envoy", trusted_proxies=("10.0.0.0/8", "127.0.0.6")
        )
        _get(made, "/orders/7", {"x-forwarded-for": "203.0.113.7"}, peer="10.1.2.3")
        (span,) = made.spans()
        assert dict(span.attributes or {})["client.address"] == "203.0.113.7"
    finally:
        made.close()
