"""requests: a CLIENT span per ``Session.send`` under the current span, the trace context
injected (W3C and B3) without touching the caller's request, the duration histogram, errors,
redirect hops, and undoing it all; against a real loopback server echoing the headers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from opentelemetry.trace import SpanKind, StatusCode

from telemetry_web.instrumentors import RequestsInstrumentor
from telemetry_web.testing import CapturedTelemetry

from .._net import free_port
from ._http_server import EchoServer
from ._support import instrumentor_factory, is_child_of, named, only

MakeInstrumentor = Callable[..., RequestsInstrumentor]
DURATION = "http_client_request_duration_seconds"


@pytest.fixture
def make_instrumentor(captured: CapturedTelemetry, cleanup: list[Any]) -> MakeInstrumentor:
    return instrumentor_factory(RequestsInstrumentor, captured, cleanup)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _count(captured: CapturedTelemetry, status: str, method: str = "GET") -> float:
    value = captured.sample(
        f"{DURATION}_count", method=method, server_address="127.0.0.1", status=status
    )
    return value or 0.0


def _span_id(traceparent: str) -> str:
    return traceparent.split("-")[2]


def test_client_span_attributes_parent_and_w3c_header(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    session: requests.Session,
    echo: EchoServer,
) -> None:
    """A CLIENT span ``GET`` under the current span; the server receives its traceparent; the
    caller's headers dict is unchanged."""
    make_instrumentor().instrument(client=session)
    headers = {"x-mine": "1"}
    with captured.telemetry.get_tracer("test").start_as_current_span("request") as parent:
        received = session.get(echo.url("/echo?api_key=k&q=1"), headers=headers).json()
    span = only(captured.spans(), "GET")
    assert span.kind is SpanKind.CLIENT
    assert is_child_of(span, parent)
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.full": f"http://127.0.0.1:{echo.port}/echo?api_key=REDACTED&q=1",
        "server.address": "127.0.0.1",
        "server.port": echo.port,
        "http.response.status_code": 200,
    }
    version, trace_id, span_id, flags = received["traceparent"].split("-")
    assert (version, trace_id) == ("00", f"{span.context.trace_id:032x}")
    assert span_id == f"{span.context.span_id:016x}"
    assert int(flags, 16) & 1
    assert received["x-mine"] == "1"
    assert headers == {"x-mine": "1"}
    assert _count(captured, "200") == 1


def test_prepared_request_sent_as_is_is_not_changed(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    session: requests.Session,
    echo: EchoServer,
) -> None:
    """``session.send(prepared)``: a copy carries the context, the body is sent whole."""
    make_instrumentor().instrument(client=session)
    prepared = requests.Request("POST", echo.url(), data=b"payload").prepare()
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        received = session.send(prepared).json()
    assert "traceparent" not in prepared.headers
    assert received["content-length"] == "7"
    span = only(captured.spans(), "POST")
    assert _span_id(received["traceparent"]) == f"{span.context.span_id:016x}"


def test_b3_multi_header_propagation(
    make_captured: Callable[..., CapturedTelemetry],
    make_instrumentor: MakeInstrumentor,
    session: requests.Session,
    echo: EchoServer,
) -> None:
    """With ``tracing.propagation: [b3multi]`` the X-B3-* headers are sent, not traceparent."""
    captured = make_captured(tracing={"propagation": ["b3multi"]})
    make_instrumentor(captured.telemetry).instrument(client=session)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        received = session.get(echo.url()).json()
    span = only(captured.spans(), "GET")
    assert received["x-b3-traceid"] == f"{span.context.trace_id:032x}"
    assert received["x-b3-spanid"] == f"{span.context.span_id:016x}"
    assert received["x-b3-sampled"] == "1"
    assert "traceparent" not in received


def test_error_status_and_connection_refused(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    session: requests.Session,
    echo: EchoServer,
) -> None:
    """A 500 is an error span with ``error.type="500"``; a refused connection raises the
    library's ConnectionError unchanged, recorded on the span and as ``status="error"``."""
    make_instrumentor().instrument(client=session)
    refused = f"http://127.0.0.1:{free_port()}/"
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        assert session.get(echo.url("/status/500")).status_code == 500
        with pytest.raises(requests.ConnectionError):
            session.get(refused, timeout=5)
    failed, refused_span = named(captured.spans(), "GET")
    assert (failed.attributes or {})["error.type"] == "500"
    assert failed.status.status_code is StatusCode.ERROR
    assert (refused_span.attributes or {})["error.type"] == "requests.exceptions.ConnectionError"
    assert refused_span.status.status_code is StatusCode.ERROR
    assert [e.name for e in refused_span.events] == ["exception"]
    assert _count(captured, "500") == 1
    assert _count(captured, "error") == 1


def test_redirect_hops_are_child_spans(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    session: requests.Session,
    echo: EchoServer,
) -> None:
    """requests sends each hop through ``send``: the 302 span is the outer one, the hop its
    child, and the hop's request carries the hop's span id."""
    make_instrumentor().instrument(client=session)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        response = session.get(echo.url("/redirect"))
    assert response.status_code == 200
    hop, first = named(captured.spans(), "GET")  # ended in this order
    assert (first.attributes or {})["http.response.status_code"] == 200  # the final response
    assert (hop.attributes or {})["http.response.status_code"] == 200
    assert is_child_of(hop, first)
    assert _span_id(response.json()["traceparent"]) == f"{hop.context.span_id:016x}"


def test_instrument_everything_module_functions_and_uninstrument(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, echo: EchoServer
) -> None:
    """``instrument()`` covers ``requests.get``; a second call warns; ``uninstrument()`` puts
    ``Session.send`` back and records nothing more."""
    original = requests.Session.__dict__["send"]
    instrumentor = make_instrumentor()
    instrumentor.instrument()
    with pytest.warns(RuntimeWarning, match="called twice"):
        instrumentor.instrument()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request"):
        received = requests.get(echo.url(), timeout=5).json()
    span = only(captured.spans(), "GET")
    assert _span_id(received["traceparent"]) == f"{span.context.span_id:016x}"
    instrumentor.uninstrument()
    assert requests.Session.__dict__["send"] is original
    captured.clear()
    with tracer.start_as_current_span("request"):
        received = requests.get(echo.url(), timeout=5).json()
    assert [s.name for s in captured.spans()] == ["request"]
    assert "traceparent" not in received


def test_one_session_only(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, echo: EchoServer
) -> None:
    """Per-session opt-in: other sessions are untouched; undoing removes the instance patch."""
    with requests.Session() as mine, requests.Session() as other:
        instrumentor = make_instrumentor()
        instrumentor.instrument(client=mine)
        with captured.telemetry.get_tracer("test").start_as_current_span("request"):
            mine.get(echo.url())
            assert "traceparent" not in other.get(echo.url()).json()
        assert len(named(captured.spans(), "GET")) == 1
        instrumentor.uninstrument(client=mine)
        assert "send" not in vars(mine)
        assert "traceparent" not in mine.get(echo.url()).json()
    with pytest.raises(TypeError, match=r"requests\.Session"):
        instrumentor.instrument(client="http://example.com")
