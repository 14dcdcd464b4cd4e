"""One trace across three processes: gateway → api → worker (``sample_apps/chain``), each a real
uvicorn process on loopback exporting OTLP/HTTP to one loopback receiver.

One request to the gateway gives five spans (three SERVER, two CLIENT from the instrumented
httpx clients) in one trace whose parents line up across the process boundaries, through W3C
and through B3 multi-header propagation; and when the gateway samples the request out, no
service exports anything.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from typing import Any

import pytest

from tests._net import free_port
from tests.servers.conftest import serve

from ._receivers import OtlpReceiver

pytestmark = pytest.mark.server

SERVER, CLIENT = 2, 3  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT


def _run_chain(
    receiver: OtlpReceiver, propagation: str, sampling: dict[str, str]
) -> dict[str, Any]:
    """Start worker, api and gateway; one GET /checkout/7; stop them all (SIGTERM flushes)."""
    ports = {name: free_port() for name in ("worker", "api", "gateway")}
    next_service = {"api": "worker", "gateway": "api"}
    with contextlib.ExitStack() as stack:
        for name in ("worker", "api", "gateway"):  # started callee first, stopped caller first
            env = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                "TELEMETRY_TRACING__PROPAGATION": propagation,
                "TELEMETRY_TRACING__SAMPLING": sampling[name],
                "TELEMETRY_TRACING__BATCH__SCHEDULE_DELAY": "100ms",
            }
            if name in next_service:
                env["CHAIN_NEXT_URL"] = f"http://127.0.0.1:{ports[next_service[name]]}"
            args = ["uvicorn", f"sample_apps.chain.{name}:app", "--port", str(ports[name]),
                    "--no-access-log"]  # fmt: skip
            stack.enter_context(serve(args, ports[name], env=env))
        url = f"http://127.0.0.1:{ports['gateway']}/checkout/7"
        with urllib.request.urlopen(url, timeout=20) as response:
            assert response.status == 200
            body: dict[str, Any] = json.loads(response.read())
    return body


def _spans_by_role(receiver: OtlpReceiver) -> dict[tuple[str, int], Any]:
    """The received spans keyed by (service.name, kind); each role exactly once."""
    spans = receiver.spans()
    roles = {(resource["service.name"], span.kind): span for resource, span in spans}
    assert len(roles) == len(spans), [(r["service.name"], s.name) for r, s in spans]
    return roles


@pytest.mark.parametrize(
    ("propagation", "header"),
    [("w3c", "traceparent"), ("b3multi", "x-b3-traceid")],
)
def test_one_request_is_one_trace_across_three_processes(propagation: str, header: str) -> None:
    """Five spans, one trace id, and each parent the span that made the call."""
    sampling = {"gateway": "parent_based", "api": "parent_based", "worker": "parent_based"}
    with OtlpReceiver() as receiver:
        body = _run_chain(receiver, propagation, sampling)
        roles = _spans_by_role(receiver)

    assert sorted((service, kind) for service, kind in roles) == [
        ("chain-api", SERVER), ("chain-api", CLIENT), ("chain-gateway", SERVER),
        ("chain-gateway", CLIENT), ("chain-worker", SERVER),
    ]  # fmt: skip
    gateway, gateway_call = roles["chain-gateway", SERVER], roles["chain-gateway", CLIENT]
    api, api_call = roles["chain-api", SERVER], roles["chain-api", CLIENT]
    worker = roles["chain-worker", SERVER]
    assert gateway.name == "GET /checkout/{order_id}"
    assert api.name == "GET /orders/{order_id}"
    assert worker.name == "GET /jobs/{job_id}"
    assert gateway_call.name == api_call.name == "GET"

    assert {span.trace_id for span in roles.values()} == {gateway.trace_id}
    assert gateway.parent_span_id == b""  # the root
    assert gateway_call.parent_span_id == gateway.span_id
    assert api.parent_span_id == gateway_call.span_id
    assert api_call.parent_span_id == api.span_id
    assert worker.parent_span_id == api_call.span_id

    # The downstream services received the context in the configured format only.
    for service in ("api", "worker"):
        received = body["received"][service]
        assert header in received, received
        other = "x-b3-traceid" if header == "traceparent" else "traceparent"
        assert other not in received, received
    trace_hex = gateway.trace_id.hex()
    if propagation == "w3c":
        assert body["received"]["api"]["traceparent"].split("-")[1:3] == [
            trace_hex,
            gateway_call.span_id.hex(),
        ]
    else:
        assert body["received"]["worker"]["x-b3-traceid"] == trace_hex
        assert body["received"]["worker"]["x-b3-spanid"] == api_call.span_id.hex()
        assert body["received"]["worker"]["x-b3-sampled"] == "1"


def test_sampled_out_at_the_gateway_means_no_spans_anywhere() -> None:
    """``always_off`` at the gateway, ``parent_based`` behind it: the not-sampled decision
    travels with the context and no service exports a span."""
    sampling = {"gateway": "always_off", "api": "parent_based", "worker": "parent_based"}
    with OtlpReceiver() as receiver:
        body = _run_chain(receiver, "w3c", sampling)
        assert receiver.spans() == []
        assert receiver.bodies == []

    api_header, worker_header = (body["received"][s]["traceparent"] for s in ("api", "worker"))
    assert api_header.split("-")[1] == worker_header.split("-")[1]  # one (unrecorded) trace
    for header in (api_header, worker_header):
        assert not int(header.split("-")[3], 16) & 1  # not sampled
