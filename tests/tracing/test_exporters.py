"""Exporters on the wire: OTLP HTTP/protobuf decoded with opentelemetry-proto, Zipkin v2 JSON
checked against the v2 API schema, each at a loopback receiver."""

from __future__ import annotations

import json
from typing import Any

from ._receivers import OtlpReceiver, ZipkinReceiver, attributes, check_zipkin_span
from ._support import CALLER, TRACE, drive


def test_otlp_http_protobuf_on_the_wire(telemetry_for: Any) -> None:
    """The OTLP receiver decodes names, ids, parents, attributes, events, status and resource."""
    with OtlpReceiver() as receiver:
        telemetry = telemetry_for({"otlp": {"endpoint": f"http://127.0.0.1:{receiver.port}"}})
        drive(telemetry)
        telemetry.flush(timeout=5)
        spans = {span.name: (resource, span) for resource, span in receiver.spans()}
    assert set(spans) == {"GET /items/{id}", "load", "query"}
    resource, server = spans["GET /items/{id}"]
    assert resource["service.name"] == "orders"
    assert resource["deployment.environment.name"] == "prod"
    assert resource["service.version"] == "1.4.2"
    assert server.trace_id.hex() == TRACE
    assert server.parent_span_id.hex() == CALLER
    assert server.kind == 2  # SERVER
    server_attributes = attributes(server.attributes)
    assert server_attributes["http.route"] == "/items/{id}"
    assert server_attributes["http.response.status_code"] == 200
    _, load = spans["load"]
    _, query = spans["query"]
    assert query.parent_span_id == load.span_id
    assert load.parent_span_id == b""
    assert attributes(load.attributes) == {"db.system": "postgresql"}
    (event,) = load.events
    assert event.name == "cache miss"
    assert attributes(event.attributes) == {"key": "order:7"}
    assert query.status.code == 2  # STATUS_CODE_ERROR
    assert query.status.message == "no such order"
    (exception,) = query.events
    assert exception.name == "exception"
    assert attributes(exception.attributes)["exception.type"] == "ValueError"
    assert load.end_time_unix_nano >= query.end_time_unix_nano > query.start_time_unix_nano


def test_zipkin_v2_json_on_the_wire(telemetry_for: Any) -> None:
    """Every Zipkin span passes the v2 schema; ids, parents, kind, tags, annotations and the
    configured local endpoint are as sent."""
    with ZipkinReceiver() as receiver:
        telemetry = telemetry_for(
            {
                "zipkin": {
                    "endpoint": receiver.url,
                    "local_endpoint": {"service_name": "orders-edge", "ipv4": "10.0.0.7",
                                       "port": 8080},
                }
            }
        )  # fmt: skip
        drive(telemetry)
        telemetry.flush(timeout=5)
        spans = receiver.spans()
    for span in spans:
        assert check_zipkin_span(span) == [], span
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"GET /items/{id}", "load", "query"}
    server = by_name["GET /items/{id}"]
    assert server["traceId"] == TRACE
    assert server["parentId"] == CALLER
    assert server["kind"] == "SERVER"
    assert server["localEndpoint"] == {"serviceName": "orders-edge", "ipv4": "10.0.0.7",
                                       "port": 8080}  # fmt: skip
    assert server["tags"]["http.route"] == "/items/{id}"
    load, query = by_name["load"], by_name["query"]
    assert query["parentId"] == load["id"]
    assert "parentId" not in load
    assert load["tags"]["db.system"] == "postgresql"
    assert [json.loads(a["value"]) for a in load["annotations"]] == [
        {"cache miss": {"key": "order:7"}}
    ]
    assert query["tags"]["otel.status_code"] == "ERROR"
    assert query["tags"]["error"] == "no such order"


def test_zipkin_schema_check_rejects_what_the_v2_api_forbids() -> None:
    """The schema check itself catches bad ids, kinds, durations, endpoints and tags."""
    good = {"traceId": TRACE, "id": CALLER, "kind": "SERVER", "duration": 5, "tags": {"a": "b"}}
    assert check_zipkin_span(good) == []
    for bad in (
        {**good, "traceId": TRACE.upper()},
        {**good, "id": "123"},
        {**good, "kind": "INTERNAL"},
        {**good, "duration": 0},
        {**good, "tags": {"a": 1}},
        {**good, "localEndpoint": {"serviceName": "x", "ipv4": "not-an-ip"}},
        {**good, "extra": True},
    ):
        assert check_zipkin_span(bad) != [], bad


def test_otlp_grpc_on_the_wire(telemetry_for: Any) -> None:
    """OTLP over gRPC (protocol: grpc) reaches a loopback gRPC TraceService, standing in for a
    collector, that decodes the same ExportTraceServiceRequest: names, ids and parents."""
    from concurrent import futures

    import grpc  # type: ignore[import-untyped]  # as in src: no stubs installed
    from opentelemetry.proto.collector.trace.v1 import (
        trace_service_pb2,
        trace_service_pb2_grpc,
    )

    received: list[Any] = []

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            received.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    # The generated gRPC module carries no annotations.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        telemetry = telemetry_for(
            {"otlp": {"endpoint": f"http://127.0.0.1:{port}", "protocol": "grpc"}}
        )
        drive(telemetry)
        telemetry.flush(timeout=10)
    finally:
        server.stop(grace=None)
    spans = {
        span.name: span
        for request in received
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    }
    assert set(spans) == {"GET /items/{id}", "load", "query"}
    assert spans["GET /items/{id}"].trace_id.hex() == TRACE
    assert spans["GET /items/{id}"].parent_span_id.hex() == CALLER
    assert spans["query"].parent_span_id == spans["load"].span_id
