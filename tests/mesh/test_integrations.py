"""The proxy examples in integrations/ are accepted by the proxies' own validators (``caddy
validate``, ``haproxy -c``, ``nginx -t``); the Envoy and Istio snippets, for which no validator
is installed here, are read and checked for the fields the mesh profile relies on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool

from ._proxies import caddy_binary

INTEGRATIONS = Path(__file__).resolve().parents[2] / "integrations"


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def test_caddyfile_is_valid(tmp_path: Path) -> None:
    """`caddy validate` accepts integrations/caddy/Caddyfile (tracing + reverse_proxy)."""
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    path = INTEGRATIONS / "caddy" / "Caddyfile"
    result = _run([caddy_binary(), "validate", "--config", str(path), "--adapter", "caddyfile"],
                  env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stderr + result.stdout


def test_haproxy_config_is_valid() -> None:
    """`haproxy -c` accepts integrations/haproxy/haproxy.cfg."""
    path = INTEGRATIONS / "haproxy" / "haproxy.cfg"
    result = _run([require_tool("haproxy"), "-c", "-f", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout


def test_nginx_config_is_valid(tmp_path: Path) -> None:
    """`nginx -t` accepts integrations/nginx/nginx.conf (pid and logs under a scratch prefix)."""
    path = INTEGRATIONS / "nginx" / "nginx.conf"
    directives = f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"
    result = _run([require_tool("nginx"), "-t", "-p", str(tmp_path), "-c", str(path),
                   "-g", directives])  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_envoy_snippet_sends_b3_and_the_attempt_count() -> None:
    """The Envoy snippet traces with Zipkin (B3 multi-header), generates x-request-id and
    turns on x-envoy-attempt-count."""
    config = yaml.safe_load((INTEGRATIONS / "envoy" / "tracing.yaml").read_text())
    (listener,) = config["static_resources"]["listeners"]
    (hcm,) = listener["filter_chains"][0]["filters"]
    manager = hcm["typed_config"]
    assert manager["@type"].endswith("http_connection_manager.v3.HttpConnectionManager")
    assert manager["generate_request_id"] is True
    provider = manager["tracing"]["provider"]
    assert provider["name"] == "envoy.tracers.zipkin"
    assert (
        provider["typed_config"]["@type"]
        == "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig"
    )
    clusters = {c["name"] for c in config["static_resources"]["clusters"]}
    assert provider["typed_config"]["collector_cluster"] in clusters
    (virtual_host,) = manager["route_config"]["virtual_hosts"]
    assert virtual_host["include_request_attempt_count"] is True
    assert virtual_host["routes"][0]["route"]["cluster"] in clusters


def test_istio_telemetry_resource_samples_a_share_of_new_traces() -> None:
    """The Istio Telemetry resource is telemetry.istio.io/v1 with a tracing provider and a
    sampling percentage from 0 to 100."""
    resource = yaml.safe_load((INTEGRATIONS / "istio" / "telemetry.yaml").read_text())
    assert (resource["apiVersion"], resource["kind"]) == ("telemetry.istio.io/v1", "Telemetry")
    (tracing,) = resource["spec"]["tracing"]
    assert [p["name"] for p in tracing["providers"]] == ["zipkin"]
    assert 0 <= tracing["randomSamplingPercentage"] <= 100


@pytest.mark.parametrize("name", ["caddy/Caddyfile", "haproxy/haproxy.cfg", "nginx/nginx.conf"])
def test_examples_send_the_request_id_and_forwarded_address(name: str) -> None:
    """Each proxy example sends a request id and the client address the app reads."""
    text = (INTEGRATIONS / name).read_text()
    assert "X-Request-ID" in text
    assert ("forwardfor" in text) or ("X-Forwarded-For" in text) or ("reverse_proxy" in text)
