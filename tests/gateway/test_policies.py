"""In-process: the ``gateway`` section, route policies and the hooks with no HTTP library."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_web import gateway
from telemetry_web.errors import ConfigError
from telemetry_web.gateway import (
    GatewayRouteSettings,
    GatewayTelemetryConfig,
    GatewayTracingSettings,
)
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

ROUTES = (
    GatewayRouteSettings(match="/ping", sample_rate=0.0, request_log=False, size_metrics=False),
)


@pytest.fixture
def captured() -> Iterator[CapturedTelemetry]:
    # The body-size histograms are opt-in; route policies then leave them out per route.
    captured = capture_telemetry({"metrics": {"size_histograms": True}})
    yield captured
    captured.close()


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stdlib HTTP server answering 200 and keeping each request's headers."""
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"routes": [{"match": "ping"}]}, "gateway.routes[0].match: expected a route template"),
        (
            {"tracing": {"sample_rate": 1.5}},
            "gateway.tracing.sample_rate: expected a number from 0 to 1, got 1.5",
        ),
        ({"routes": [{"match": "/x", "request_log": "maybe"}]}, "gateway.routes[0].request_log"),
    ],
)
def test_invalid_gateway_section_names_the_key(section: dict[str, Any], message: str) -> None:
    """A bad value is a ConfigError naming its key path and what was expected."""
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        capture_telemetry({"gateway": section})


def test_yaml_section_and_python_api_build_the_same_policies() -> None:
    """``gateway:`` in the configuration and ``configure_telemetry`` give the same settings."""
    section = {"tracing": {"sample_rate": 0.1},
               "routes": [{"match": "/ping", "sample_rate": 0, "request_log": False,
                           "size_metrics": False}]}  # fmt: skip
    from_file = capture_telemetry({"gateway": section})
    from_code = capture_telemetry()
    try:
        gateway.configure_telemetry(
            from_code.telemetry,
            GatewayTelemetryConfig(tracing=GatewayTracingSettings(sample_rate=0.1), routes=ROUTES),
        )
        assert from_code.telemetry.settings.gateway == from_file.telemetry.settings.gateway
        sampler = from_file.telemetry.tracer_provider.sampler  # type: ignore[union-attr]
        assert sampler.get_description().startswith("RouteSampler{")
    finally:
        from_file.close()
        from_code.close()


def _request(gw: gateway.Gateway, route: str, headers: dict[str, str] | None = None) -> None:
    request = gw.on_request_start(method="GET", path=route, route=route, headers=headers)
    gw.on_request_end(request, 200, response_size=10)


def test_route_rates_and_request_log(captured: CapturedTelemetry) -> None:
    """Rate 0 and log off for /ping: 5 requests, no span, no line; 5 on /orders: 5 and 5. A
    caller's sampled context is still followed on /ping (a trace is never cut)."""
    gw = gateway.configure_telemetry(
        captured.telemetry,
        GatewayTelemetryConfig(tracing=GatewayTracingSettings(sample_rate=1.0), routes=ROUTES),
    )
    for _ in range(5):
        _request(gw, "/ping")
        _request(gw, "/orders")
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    _request(gw, "/ping", {"traceparent": caller})
    captured.telemetry.flush()
    assert sorted(s.name for s in captured.spans()) == ["GET /orders"] * 5 + ["GET /ping"]
    lines = [e for e in captured.logs() if e.get("event") == "request"]
    assert [e["route"] for e in lines] == ["/orders"] * 5
    assert captured.sample("http_response_size_bytes_count", route="/ping", method="GET",
                           status="200") == 0.0  # fmt: skip
    assert captured.sample("http_response_size_bytes_count", route="/orders", method="GET",
                           status="200") == 5.0  # fmt: skip


def test_hooks_without_httpx(
    captured: CapturedTelemetry, upstream: tuple[str, list[dict[str, str]]]
) -> None:
    """urllib through the hooks: a CLIENT span under the request's, its context sent upstream,
    a retry event, and the upstream metrics by name and status (timeout included)."""
    url, seen = upstream
    gw = gateway.configure_telemetry(captured.telemetry)
    request = gw.on_request_start(method="GET", path="/api/x", route="/api/{rest}")
    headers: dict[str, str] = {}
    call = gw.on_upstream_start("billing", method="GET", url=url + "/x", headers=headers)
    call.retry(reason="ConnectError")
    with urllib.request.urlopen(urllib.request.Request(url + "/x", headers=headers)) as answer:
        gw.on_upstream_end(call, status=answer.status)
    timed = gw.on_upstream_start("billing", method="GET", url=url + "/slow")
    timed.timeout(0.25)
    gw.on_upstream_end(timed, timed_out=True)
    gw.on_request_end(request, 200)
    captured.telemetry.flush()

    spans = {s.name: s for s in captured.spans() if s.kind.name == "SERVER"}
    server = spans["GET /api/{rest}"]
    clients = [s for s in captured.spans() if s.kind.name == "CLIENT"]
    assert [s.parent.span_id for s in clients] == [server.context.span_id] * 2  # type: ignore[union-attr]
    first = clients[0]
    assert first.attributes["gateway.upstream.name"] == "billing"  # type: ignore[index]
    assert [(e.name, dict(e.attributes or {})) for e in first.events] == [
        ("retry", {"attempt": 1, "reason": "ConnectError"})
    ]
    assert seen[0]["traceparent"].split("-")[2] == format(first.context.span_id, "016x")
    assert [e.name for e in clients[1].events] == ["timeout"]
    assert captured.sample("gateway_upstream_requests_total", upstream="billing",
                           status="200") == 1.0  # fmt: skip
    assert captured.sample("gateway_upstream_requests_total", upstream="billing",
                           status="timeout") == 1.0  # fmt: skip
    assert captured.sample("gateway_upstream_request_duration_seconds_count",
                           upstream="billing") == 2.0  # fmt: skip
