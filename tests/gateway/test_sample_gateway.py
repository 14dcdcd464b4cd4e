"""The sample gateway (``sample_apps/gateway``) in front of its two services, three real uvicorn
processes on loopback exporting OTLP/HTTP to one loopback receiver: upstream client spans in one
trace, upstream metrics, per-route sampling and request logs, a retry and a timeout."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests._metrics import Scrape
from tests._net import free_port
from tests.servers.conftest import serve
from tests.tracing._receivers import OtlpReceiver, attributes

pytestmark = pytest.mark.server

SERVER, CLIENT = 2, 3  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT
STATUS_ERROR = 2


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for s in Scrape.parse(text).samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k in ("upstream",
                              "status", "route")))  # fmt: skip
        found[s.name, labels] = s.value
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Start orders, inventory and the gateway; send the traffic; stop them (SIGTERM flushes)."""
    log_file = tmp_path_factory.mktemp("gateway") / "gateway.log"
    ports = {name: free_port() for name in ("orders", "inventory", "gateway")}
    statuses: dict[str, int] = {}
    with OtlpReceiver() as receiver:
        with contextlib.ExitStack() as stack:
            base = {
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
                "TELEMETRY_TRACING__BATCH__SCHEDULE_DELAY": "100ms",
            }
            for name in ("orders", "inventory"):
                args = ["uvicorn", f"sample_apps.gateway.services:{name}", "--port",
                        str(ports[name]), "--no-access-log"]  # fmt: skip
                stack.enter_context(
                    serve(args, ports[name], env={**base, "ORDERS_SLOW_SECONDS": "1.5"})
                )
            env = {
                **base,
                "GATEWAY_ORDERS_URL": f"http://127.0.0.1:{ports['orders']}",
                "GATEWAY_INVENTORY_URL": f"http://127.0.0.1:{ports['inventory']}",
                "GATEWAY_SAMPLE_RATE": "1",
                "GATEWAY_UPSTREAM_TIMEOUT": "0.5",
                "TELEMETRY_LOGGING__SINKS__FILE__PATH": str(log_file),
                # The body-size histograms are opt-in; the /ping policy then leaves them out.
                "TELEMETRY_METRICS__SIZE_HISTOGRAMS": "true",
            }
            args = ["uvicorn", "sample_apps.gateway.app:app", "--port", str(ports["gateway"]),
                    "--no-access-log"]  # fmt: skip
            stack.enter_context(serve(args, ports["gateway"], env=env))
            url = f"http://127.0.0.1:{ports['gateway']}"
            for path in ("/api/orders/orders/7", "/api/inventory/items/3",
                         "/api/orders/flaky/k1", "/api/orders/slow"):  # fmt: skip
                statuses[path] = _get(url + path)
            for _ in range(3):
                statuses["/ping"] = _get(url + "/ping")
            with urllib.request.urlopen(url + "/metrics", timeout=20) as response:
                metrics = response.read().decode()
        spans = receiver.spans()
    lines = [json.loads(line) for line in Path(log_file).read_text().splitlines() if line]
    return {"statuses": statuses, "metrics": _samples(metrics), "spans": spans, "logs": lines}


def _by(spans: list[tuple[dict[str, Any], Any]], service: str, kind: int) -> list[Any]:
    return [s for r, s in spans if r["service.name"] == service and s.kind == kind]


def test_responses(run: dict[str, Any]) -> None:
    """The client gets each upstream's answer, the retried one's second, and 504 on timeout."""
    assert run["statuses"] == {
        "/api/orders/orders/7": 200, "/api/inventory/items/3": 200,
        "/api/orders/flaky/k1": 200, "/api/orders/slow": 504, "/ping": 200,
    }  # fmt: skip


def test_upstream_metrics_are_exact_per_upstream_and_status(run: dict[str, Any]) -> None:
    """Counts by upstream name and final status (the retried 503 is not a status), durations by
    upstream name; no label holds a URL."""
    m = run["metrics"]
    upstream = {
        labels: value for (name, labels), value in m.items()
        if name == "gateway_upstream_requests_total"
    }  # fmt: skip
    assert upstream == {
        (("status", "200"), ("upstream", "orders")): 2.0,
        (("status", "timeout"), ("upstream", "orders")): 1.0,
        (("status", "200"), ("upstream", "inventory")): 1.0,
    }
    counts = {
        labels: value for (name, labels), value in m.items()
        if name == "gateway_upstream_request_duration_seconds_count"
    }  # fmt: skip
    assert counts == {(("upstream", "orders"),): 3.0, (("upstream", "inventory"),): 1.0}


def test_size_metrics_off_for_the_ping_route(run: dict[str, Any]) -> None:
    """/ping is counted and timed but has no size observations; proxied routes have both."""
    m = run["metrics"]
    ping = (("route", "/ping"), ("status", "200"))
    orders = (("route", "/api/orders/{path:path}"), ("status", "200"))
    assert m["http_requests_total", ping] == 3.0
    assert m["http_response_size_bytes_count", ping] == 0.0
    assert m["http_request_size_bytes_count", ping] == 0.0
    assert m["http_request_duration_seconds_count", ping] == 3.0
    assert m["http_response_size_bytes_count", orders] == 2.0


def test_one_trace_gateway_client_span_service(run: dict[str, Any]) -> None:
    """Gateway SERVER → upstream CLIENT (named upstream) → service SERVER, one trace."""
    spans = run["spans"]
    server = next(s for s in _by(spans, "gateway", SERVER)
                  if attributes(s.attributes)["url.path"] == "/api/orders/orders/7")  # fmt: skip
    calls = [s for s in _by(spans, "gateway", CLIENT) if s.trace_id == server.trace_id]
    assert len(calls) == 1
    call = calls[0]
    assert call.parent_span_id == server.span_id
    assert call.name == "GET"
    attrs = attributes(call.attributes)
    assert attrs["gateway.upstream.name"] == "orders"
    assert attrs["http.response.status_code"] == 200
    (order,) = [s for s in _by(spans, "orders", SERVER) if s.trace_id == server.trace_id]
    assert order.name == "GET /orders/{order_id}"
    assert order.parent_span_id == call.span_id


def test_route_sample_rates_give_exact_span_counts(run: dict[str, Any]) -> None:
    """Rate 0 for /ping: none of its 3 requests is traced; rate 1: each of the 4 others is."""
    spans = run["spans"]
    gateway_servers = _by(spans, "gateway", SERVER)
    assert sorted(s.name for s in gateway_servers) == [
        "GET /api/inventory/{path:path}",
        *["GET /api/orders/{path:path}"] * 3,
    ]
    assert len(_by(spans, "gateway", CLIENT)) == 4
    assert len(_by(spans, "orders", SERVER)) == 4  # orders/7, flaky twice, slow
    assert len(_by(spans, "inventory", SERVER)) == 1


def test_retry_is_an_event_on_the_client_span(run: dict[str, Any]) -> None:
    """The 503 then 200 is one client span: a retry event, the final status, resend count 1;
    both attempts are children of it."""
    spans = run["spans"]
    (call,) = [s for s in _by(spans, "gateway", CLIENT)
               if attributes(s.attributes)["url.full"].endswith("/flaky/k1")]  # fmt: skip
    assert [(e.name, attributes(e.attributes)) for e in call.events] == [
        ("retry", {"attempt": 1, "reason": "503"})
    ]
    attrs = attributes(call.attributes)
    assert attrs["http.response.status_code"] == 200
    assert attrs["http.request.resend_count"] == 1
    attempts = [s for s in _by(spans, "orders", SERVER) if s.parent_span_id == call.span_id]
    assert sorted(attributes(s.attributes)["http.response.status_code"] for s in attempts) == [
        200,
        503,
    ]


def test_timeout_is_an_event_and_a_504(run: dict[str, Any]) -> None:
    """The slow upstream: a timeout event, error.type timeout, and a 504 server span."""
    spans = run["spans"]
    (call,) = [s for s in _by(spans, "gateway", CLIENT)
               if attributes(s.attributes)["url.full"].endswith("/slow")]  # fmt: skip
    assert [(e.name, attributes(e.attributes)) for e in call.events] == [
        ("timeout", {"attempt": 1, "timeout": 0.5})
    ]
    assert attributes(call.attributes)["error.type"] == "timeout"
    assert call.status.code == STATUS_ERROR
    (server,) = [s for s in _by(spans, "gateway", SERVER) if s.span_id == call.parent_span_id]
    assert attributes(server.attributes)["http.response.status_code"] == 504


def test_request_log_off_for_the_ping_route(run: dict[str, Any]) -> None:
    """One request line per proxied request, none for /ping."""
    lines = [e for e in run["logs"] if e.get("event") == "request"]
    assert sorted((e["path"], e["status"]) for e in lines) == [
        ("/api/inventory/items/3", 200), ("/api/orders/flaky/k1", 200),
        ("/api/orders/orders/7", 200), ("/api/orders/slow", 504),
    ]  # fmt: skip
