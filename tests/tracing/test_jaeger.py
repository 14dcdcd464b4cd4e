"""The Jaeger exporters on the wire: the collector's Thrift binary ``POST /api/traces`` and the
agent's Thrift compact ``emitBatch`` over UDP, at loopback receivers standing in for Jaeger and
decoded by a decoder written from the protocol specifications and the IDL (``_thrift_decoder``)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from thrift.protocol.TBinaryProtocol import TBinaryProtocol  # type: ignore[import-untyped]
from thrift.Thrift import TType  # type: ignore[import-untyped]
from thrift.transport.TTransport import TMemoryBuffer  # type: ignore[import-untyped]

from telemetry_web import ConfigError, Telemetry
from telemetry_web.tracing.jaeger import JaegerAgentExporter, JaegerCollectorExporter
from telemetry_web.tracing.jaeger._convert import to_jaeger_process, to_jaeger_span
from telemetry_web.tracing.jaeger._thrift import emit_batch_message, encode

from .._net import free_port
from ..test_optional_imports import run_hidden
from ._receivers import JaegerAgentReceiver, JaegerCollectorReceiver
from ._support import CALLER, TRACE, drive
from ._thrift_decoder import (
    REF_TYPES,
    BinaryReader,
    DecodeError,
    decode_batch_binary,
    span_id,
    tag_types,
    tags,
    trace_id,
)

# No console, and no local store: it would be the working directory's (the repository's).
QUIET = {"logging": {"sinks": {"console": False}}, "store": {"enabled": False}}


def dropped(telemetry: Telemetry, reason: str) -> float:
    constant = dict(telemetry.metrics.constant_labels)
    labels = {**constant, "exporter": "jaeger", "reason": reason}
    return telemetry.registry.get_sample_value("telemetry_spans_dropped_total", labels) or 0.0


def check_driven_spans(found: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """The spans of ``drive()`` as Jaeger must see them, whichever way they travelled."""
    spans = {span["operationName"]: (process, span) for process, span in found}
    assert set(spans) == {"GET /items/{id}", "load", "query"}
    process, server = spans["GET /items/{id}"]
    assert process["serviceName"] == "orders"
    assert tags(process)["service.version"] == "1.4.2"
    assert tags(process)["deployment.environment.name"] == "prod"
    assert "service.name" not in tags(process)
    assert trace_id(server) == TRACE
    assert span_id(server["parentSpanId"]) == CALLER
    (parent_ref,) = server["references"]
    assert REF_TYPES[parent_ref["refType"]] == "CHILD_OF"
    assert (trace_id(parent_ref), span_id(parent_ref["spanId"])) == (TRACE, CALLER)
    assert server["flags"] == 1  # sampled
    server_tags = tags(server)
    assert server_tags["http.route"] == "/items/{id}"
    assert server_tags["http.response.status_code"] == 200
    assert tag_types(server)["http.response.status_code"] == "vLong"
    assert server_tags["span.kind"] == "server"
    assert abs(server["startTime"] / 1e6 - time.time()) < 60  # microseconds since the epoch
    _, load = spans["load"]
    _, query = spans["query"]
    assert trace_id(query) == trace_id(load) != TRACE
    assert query["parentSpanId"] == load["spanId"]
    assert load["parentSpanId"] == 0
    assert "references" not in load
    assert tags(load) == {"db.system": "postgresql", "otel.scope.name": "orders.db"}
    (log,) = load["logs"]
    assert tags(log, "fields") == {"event": "cache miss", "key": "order:7"}
    assert load["startTime"] <= log["timestamp"] <= load["startTime"] + load["duration"]
    query_tags = tags(query)
    assert query_tags["error"] is True
    assert tag_types(query)["error"] == "vBool"
    assert query_tags["otel.status_code"] == "ERROR"
    assert query_tags["otel.status_description"] == "no such order"
    assert "span.kind" not in query_tags  # internal spans carry no kind
    (exception,) = query["logs"]
    exception_fields = tags(exception, "fields")
    assert exception_fields["event"] == "exception"
    assert exception_fields["exception.type"] == "ValueError"
    assert load["startTime"] <= query["startTime"]
    assert query["startTime"] + query["duration"] <= load["startTime"] + load["duration"] + 1


def test_collector_thrift_binary_on_the_wire(telemetry_for: Any) -> None:
    """The collector receives Thrift binary Batches at /api/traces (added to a URL without a
    path) as application/x-thrift; names, ids, parents, tags, logs and process are as sent."""
    with JaegerCollectorReceiver() as receiver:
        telemetry = telemetry_for({"jaeger": {"endpoint": f"http://127.0.0.1:{receiver.port}"}})
        drive(telemetry)
        telemetry.flush(timeout=5)
        found = receiver.spans()
        headers = list(receiver.headers)
    assert headers
    assert {h["content-type"] for h in headers} == {"application/x-thrift"}
    check_driven_spans(found)


def test_agent_thrift_compact_on_the_wire(telemetry_for: Any) -> None:
    """The agent receives oneway emitBatch messages in the compact protocol, one per datagram,
    with the same spans as the collector."""
    with JaegerAgentReceiver() as receiver:
        telemetry = telemetry_for({"jaeger": {"agent": {"port": receiver.port}}})
        drive(telemetry)
        telemetry.flush(timeout=5)
        assert receiver.wait_for(lambda: len(receiver.spans()) == 3)
        messages = receiver.messages()
        found = receiver.spans()
    assert {(name, kind) for name, kind, _, _ in messages} == {("emitBatch", 4)}  # ONEWAY
    check_driven_spans(found)


# --- conversion details, through both transports -------------------------------------------------

HIGH_TRACE = 0xFEDCBA9876543210_8000000000000001  # both halves above 2**63: signed on the wire
HIGH_SPAN = 0x8000000000000001
LINKED_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
SCOPE = InstrumentationScope("orders.lib", "2.0")


def readable(
    name: str,
    *,
    trace: int = HIGH_TRACE,
    span: int = HIGH_SPAN,
    parent: int | None = None,
    resource: Resource | None = None,
    **kwargs: Any,
) -> ReadableSpan:
    """A finished span as the SDK hands it to exporters."""
    sampled = TraceFlags(TraceFlags.SAMPLED)
    return ReadableSpan(
        name=name,
        context=SpanContext(trace, span, is_remote=False, trace_flags=sampled),
        parent=SpanContext(trace, parent, is_remote=True) if parent else None,
        resource=resource or Resource({"service.name": "orders", "host.name": "web-1"}),
        start_time=1_700_000_000_123_456_789,
        end_time=1_700_000_000_223_456_789,
        instrumentation_scope=SCOPE,
        **kwargs,
    )


@pytest.fixture(params=["collector", "agent"])
def transport(request: pytest.FixtureRequest) -> Iterator[Any]:
    """``(exporter, receiver)`` for the collector over HTTP and the agent over UDP."""
    receiver: Any
    if request.param == "collector":
        with JaegerCollectorReceiver() as receiver:
            exporter: Any = JaegerCollectorExporter(receiver.url)
            yield exporter, receiver
    else:
        with JaegerAgentReceiver() as receiver:
            exporter = JaegerAgentExporter("127.0.0.1", receiver.port)
            yield exporter, receiver
    exporter.shutdown()


def export(transport: Any, spans: list[ReadableSpan]) -> list[tuple[dict[str, Any], Any]]:
    exporter, receiver = transport
    assert exporter.export(spans).name == "SUCCESS"
    assert receiver.wait_for(lambda: receiver_count(receiver) >= len(spans))
    return list(receiver.spans())


def receiver_count(receiver: Any) -> int:
    return len(receiver.spans())


def test_typed_tags_from_every_attribute_type(transport: Any) -> None:
    """str, bool, int, float and bytes attributes keep their Jaeger type; arrays become JSON
    strings; an int beyond i64 becomes a string."""
    attributes = {
        "s": "text ✓", "b": False, "i": -42, "big": 2**63, "f": 0.25, "raw": b"\x00\xff",
        "names": ("a", "b"), "codes": (200, 404),
    }  # fmt: skip
    ((_, span),) = export(transport, [readable("typed", attributes=attributes)])
    assert tags(span)["s"] == "text ✓"
    assert tag_types(span) == {
        "s": "vStr", "b": "vBool", "i": "vLong", "big": "vStr", "f": "vDouble",
        "raw": "vBinary", "names": "vStr", "codes": "vStr", "otel.scope.name": "vStr",
        "otel.scope.version": "vStr",
    }  # fmt: skip
    assert {k: tags(span)[k] for k in ("b", "i", "big", "f", "raw", "names", "codes")} == {
        "b": False, "i": -42, "big": str(2**63), "f": 0.25, "raw": b"\x00\xff",
        "names": '["a","b"]', "codes": "[200,404]",
    }  # fmt: skip
    assert tags(span)["otel.scope.version"] == "2.0"


def test_ids_above_2_63_times_and_flags(transport: Any) -> None:
    """128-bit trace ids and 64-bit span ids with the top bit set survive as signed i64 halves;
    times are microseconds."""
    ((_, span),) = export(transport, [readable("ids", parent=HIGH_SPAN + 1)])
    assert span["traceIdHigh"] < 0
    assert span["traceIdLow"] < 0
    assert span["spanId"] < 0
    assert trace_id(span) == f"{HIGH_TRACE:032x}"
    assert span_id(span["spanId"]) == f"{HIGH_SPAN:016x}"
    assert span_id(span["parentSpanId"]) == f"{HIGH_SPAN + 1:016x}"
    assert span["startTime"] == 1_700_000_000_123_456
    assert span["duration"] == 100_000
    assert span["flags"] == 1


def test_links_kinds_status_and_events(transport: Any) -> None:
    """Links are FOLLOWS_FROM refs after the CHILD_OF parent ref; each kind but internal is a
    span.kind tag; OK status has no error tag; events are logs with their attributes."""
    link = Link(SpanContext(LINKED_TRACE, 0x1234, is_remote=True))
    spans = [
        readable(
            f"kind-{kind.name}",
            span=HIGH_SPAN + i,
            parent=0x99,
            kind=kind,
            links=(link,),
            status=Status(StatusCode.OK),
            events=(Event("retry", {"attempt": 2}, timestamp=1_700_000_000_150_000_000),),
        )
        for i, kind in enumerate(SpanKind)
    ]
    by_name = {span["operationName"]: span for _, span in export(transport, spans)}
    expected_kinds = {"CLIENT": "client", "SERVER": "server", "PRODUCER": "producer",
                      "CONSUMER": "consumer", "INTERNAL": None}  # fmt: skip
    for kind, expected in expected_kinds.items():
        span = by_name[f"kind-{kind}"]
        assert tags(span).get("span.kind") == expected
        assert tags(span)["otel.status_code"] == "OK"
        assert "error" not in tags(span)
        child_of, follows = span["references"]
        assert (REF_TYPES[child_of["refType"]], span_id(child_of["spanId"])) == (
            "CHILD_OF", f"{0x99:016x}"
        )  # fmt: skip
        assert REF_TYPES[follows["refType"]] == "FOLLOWS_FROM"
        assert (trace_id(follows), span_id(follows["spanId"])) == (
            f"{LINKED_TRACE:032x}", f"{0x1234:016x}"
        )  # fmt: skip
        (log,) = span["logs"]
        assert log["timestamp"] == 1_700_000_000_150_000
        assert tags(log, "fields") == {"event": "retry", "attempt": 2}


def test_one_process_per_resource(transport: Any) -> None:
    """Spans of two resources travel in two batches, each with its own process."""
    other = Resource({"service.name": "billing", "service.version": "3"})
    found = export(transport, [readable("a"), readable("b", resource=other), readable("c")])
    services = {span["operationName"]: process["serviceName"] for process, span in found}
    assert services == {"a": "orders", "b": "billing", "c": "orders"}
    process = next(p for p, s in found if s["operationName"] == "a")
    assert tags(process) == {"host.name": "web-1"}


# --- the agent's packet size ---------------------------------------------------------------------


@pytest.mark.parametrize("limit", [400, 1000, 4000, 65000])
def test_agent_packets_never_exceed_max_packet_size(limit: int) -> None:
    """Batches are split into datagrams of at most max_packet_size bytes, filled greedily, with
    every span delivered once and in order (lists of more than 14 spans included)."""
    spans = [
        readable(f"op-{i}", span=i + 1, attributes={"n": i, "pad": "x" * (i % 7 * 10)})
        for i in range(120)
    ]
    with JaegerAgentReceiver() as receiver:
        exporter = JaegerAgentExporter("127.0.0.1", receiver.port, limit)
        assert exporter.export(spans).name == "SUCCESS"
        assert receiver.wait_for(lambda: receiver_count(receiver) == 120)
        packets = list(receiver.packets)
        batches = receiver.batches()
        exporter.shutdown()
    assert all(len(packet) <= limit for packet in packets)
    names = [span["operationName"] for batch in batches for span in batch["spans"]]
    assert names == [f"op-{i}" for i in range(120)]
    if limit < 65000:
        assert len(packets) > 1
    assert any(len(batch["spans"]) > 14 for batch in batches) == (limit >= 4000)
    # Greedy: the first span of each next packet would not have fitted in the one before.
    process = to_jaeger_process(spans[0].resource)
    by_name = {span.name: encode(to_jaeger_span(span), compact=True) for span in spans}
    for batch, following in itertools.pairwise(batches):
        names_in = [s["operationName"] for s in batch["spans"]]
        grown = [by_name[n] for n in names_in] + [by_name[following["spans"][0]["operationName"]]]
        assert len(emit_batch_message(process, grown)) > limit


def test_span_too_large_for_a_packet_is_dropped_and_counted(
    telemetry_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A span larger than max_packet_size by itself is dropped, counted with reason too_large
    and reported; the spans around it are delivered."""
    with JaegerAgentReceiver() as receiver:
        telemetry = telemetry_for(
            {"jaeger": {"agent": {"port": receiver.port, "max_packet_size": 2000}}}
        )
        tracer = telemetry.get_tracer("app")
        tracer.start_span("before").end()
        tracer.start_span("huge", attributes={"blob": "x" * 5000}).end()
        tracer.start_span("after").end()
        with caplog.at_level(logging.WARNING, logger="telemetry_web.tracing"):
            telemetry.flush(timeout=5)
        assert receiver.wait_for(lambda: receiver_count(receiver) == 2)
        names = [span["operationName"] for _, span in receiver.spans()]
    assert names == ["before", "after"]
    assert dropped(telemetry, "too_large") == 1
    assert dropped(telemetry, "export_failed") == 0
    (record,) = [r for r in caplog.records if "too large" in r.getMessage()]
    assert "'huge'" in record.getMessage()
    assert "max_packet_size 2000" in record.getMessage()


# --- failures and configuration ------------------------------------------------------------------


def test_collector_down_is_reported_with_its_cause(
    telemetry_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused connection fails the batch, counts its spans and is reported once with the
    endpoint, credentials left out."""
    port = free_port()
    telemetry = telemetry_for({"jaeger": {"endpoint": f"http://ops:s3cret@127.0.0.1:{port}"}})
    telemetry.get_tracer("app").start_span("lost").end()
    with caplog.at_level(logging.WARNING, logger="telemetry_web.tracing"):
        telemetry.flush(timeout=5)
    assert dropped(telemetry, "export_failed") == 1
    (record,) = [r for r in caplog.records if r.getMessage().startswith("Trace export failed")]
    message = record.getMessage()
    assert f"connection refused to http://127.0.0.1:{port}/api/traces" in message
    assert "s3cret" not in message


def test_collector_error_status_fails_the_batch_and_basic_auth_is_sent(
    telemetry_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5xx answer is an export failure naming the status; user:password in the URL is sent
    as Basic auth."""
    with JaegerCollectorReceiver() as receiver:
        receiver.status = 503
        telemetry = telemetry_for(
            {"jaeger": {"endpoint": f"http://ops:s3cret@127.0.0.1:{receiver.port}/api/traces"}}
        )
        telemetry.get_tracer("app").start_span("refused").end()
        with caplog.at_level(logging.WARNING, logger="telemetry_web.tracing"):
            telemetry.flush(timeout=5)
        assert dropped(telemetry, "export_failed") == 1
        assert any("HTTP 503 from" in r.getMessage() for r in caplog.records)
        receiver.status = 202
        telemetry.get_tracer("app").start_span("accepted").end()
        telemetry.flush(timeout=5)
        ((_, span),) = receiver.spans()
        (headers,) = receiver.headers
    assert span["operationName"] == "accepted"
    assert headers["authorization"] == "Basic b3BzOnMzY3JldA=="  # ops:s3cret


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://jaeger:14268", "http://jaeger:14268/api/traces"),
        ("http://jaeger:14268/", "http://jaeger:14268/api/traces"),
        ("https://jaeger.example/custom/path", "https://jaeger.example/custom/path"),
        ("http://user:pw@jaeger:14268", "http://jaeger:14268/api/traces"),
    ],
)
def test_collector_url(endpoint: str, url: str) -> None:
    """/api/traces is added to a URL without a path; credentials stay out of ``endpoint``."""
    assert JaegerCollectorExporter(endpoint).endpoint == url


def test_an_empty_jaeger_section_sends_to_the_local_agent() -> None:
    """``jaeger: {}`` exports to the agent on 127.0.0.1:6831 with 65000-byte packets."""
    telemetry = Telemetry({**QUIET, "tracing": {"exporters": {"jaeger": {}}}}, use_env=False,
                          set_global=False)  # fmt: skip
    try:
        assert telemetry.tracer_provider is not None
        (processor,) = telemetry.tracer_provider.batch_processors
        exporter = processor.exporter
        assert isinstance(exporter, JaegerAgentExporter)
        assert (exporter.host, exporter.port, exporter.max_packet_size) == (
            "127.0.0.1", 6831, 65000
        )  # fmt: skip
        assert processor.name == "jaeger"
    finally:
        telemetry.shutdown()


@pytest.mark.parametrize(
    ("jaeger", "problem"),
    [
        (
            {"endpoint": "http://jaeger:14268", "agent": {"host": "agent"}},
            "tracing.exporters.jaeger: sending to both the collector (endpoint) and the agent "
            "is not supported; set one of them",
        ),
        (
            {"endpoint": "jaeger:14268"},
            "tracing.exporters.jaeger.endpoint: expected an http:// or https:// URL, got "
            "'jaeger:14268'",
        ),
        (
            {"agent": {"max_packet_size": 70000}},
            "tracing.exporters.jaeger.agent.max_packet_size: expected at most 65507 (the largest "
            "UDP payload over IPv4), got 70000",
        ),
    ],
)
def test_jaeger_configuration_errors(jaeger: dict[str, Any], problem: str) -> None:
    """Both transports at once, a collector URL that is not http(s) and a packet size no UDP
    datagram can hold are configuration errors naming the key."""
    with pytest.raises(ConfigError) as info:
        Telemetry({**QUIET, "tracing": {"exporters": {"jaeger": jaeger}}}, use_env=False,
                  set_global=False)  # fmt: skip
    assert info.value.problems == [problem]


def test_missing_thrift_names_the_extra() -> None:
    """Without the thrift library, configuring Jaeger says which extra to install."""
    result = run_hidden(
        """
        from telemetry_web import Telemetry, MissingExtraError
        try:
            Telemetry({"logging": {"sinks": {"console": False}},
                       "tracing": {"exporters": {"jaeger": {}}}}, use_env=False)
        except MissingExtraError as exc:
            print(exc)
        """,
        ["thrift"],
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'telemetry-web[jaeger]'" in result.stdout
    assert "tracing.exporters.jaeger" in result.stdout


# --- the decoder itself --------------------------------------------------------------------------


def _binary(write: Any) -> bytes:
    buffer = TMemoryBuffer()
    protocol = TBinaryProtocol(buffer)
    write(protocol)
    return bytes(buffer.getvalue())


def _tag_bytes(p: Any, *, v_type: int = 0, value_field: tuple[int, int] = (3, TType.STRING),
               skip_key: bool = False, key_type: int = TType.STRING) -> None:  # fmt: skip
    p.writeStructBegin("Tag")
    if not skip_key:
        p.writeFieldBegin("key", key_type, 1)
        p.writeString("k") if key_type == TType.STRING else p.writeI64(1)
        p.writeFieldEnd()
    p.writeFieldBegin("vType", TType.I32, 2)
    p.writeI32(v_type)
    p.writeFieldEnd()
    p.writeFieldBegin("value", value_field[1], value_field[0])
    p.writeString("v") if value_field[1] == TType.STRING else p.writeI64(7)
    p.writeFieldEnd()
    p.writeFieldStop()
    p.writeStructEnd()


def test_decoder_rejects_what_the_idl_forbids() -> None:
    """The independent decoder catches a wrong field type, a missing required field, an unknown
    field id, a value in the wrong field for its vType, and trailing bytes."""
    assert BinaryReader(_binary(_tag_bytes)).struct("Tag") == {"key": "k", "vType": 0, "vStr": "v"}
    for bad in (
        lambda p: _tag_bytes(p, key_type=TType.I64),  # key must be a string
        lambda p: _tag_bytes(p, skip_key=True),  # key is required
        lambda p: _tag_bytes(p, value_field=(9, TType.STRING)),  # no field 9 in Tag
        lambda p: _tag_bytes(p, v_type=3),  # LONG, but the value is in vStr
    ):
        with pytest.raises(DecodeError):
            BinaryReader(_binary(bad)).struct("Tag")
    with pytest.raises(DecodeError):
        decode_batch_binary(b"\x00\x00")  # an empty Batch lacks process and spans
