"""httpx: a CLIENT span per request under the current span, the trace context injected (W3C and
B3) without touching the caller's request, the duration histogram, errors, and undoing it all;
against a real loopback server that echoes the headers it received."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from telemetry_web.instrumentors import HttpxInstrumentor
from telemetry_web.testing import CapturedTelemetry

from .._net import free_port
from ._http_server import EchoServer
from ._support import instrumentor_factory, is_child_of, named, only

MakeInstrumentor = Callable[..., HttpxInstrumentor]
DURATION = "http_client_request_duration_seconds"


@pytest.fixture
def make_instrumentor(captured: CapturedTelemetry, cleanup: list[Any]) -> MakeInstrumentor:
    return instrumentor_factory(HttpxInstrumentor, captured, cleanup)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def _refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/nothing"


def _count(captured: CapturedTelemetry, status: str, method: str = "GET") -> float:
    value = captured.sample(
        f"{DURATION}_count", method=method, server_address="127.0.0.1", status=status
    )
    return value or 0.0


def test_client_span_is_a_child_of_the_current_span_with_http_attributes(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """GET under a span: a CLIENT span named ``GET`` with the semantic conventions' attributes,
    the secret query value redacted in ``url.full``."""
    make_instrumentor().instrument(client=client)
    with captured.telemetry.get_tracer("test").start_as_current_span("request") as parent:
        response = client.get(echo.url("/echo?token=s3cr3t&page=2"))
    assert response.status_code == 200
    span = only(captured.spans(), "GET")
    assert span.kind is SpanKind.CLIENT
    assert is_child_of(span, parent)
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "telemetry_web.httpx"
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.full": f"http://127.0.0.1:{echo.port}/echo?token=REDACTED&page=2",
        "server.address": "127.0.0.1",
        "server.port": echo.port,
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_w3c_context_is_injected_into_a_copy_of_the_request(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """The server receives ``traceparent`` naming the client span; the caller's headers mapping
    and the Request it sent are unchanged."""
    make_instrumentor().instrument(client=client)
    headers = {"x-mine": "1"}
    request = client.build_request("POST", echo.url(), content=b"payload")
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        received = client.get(echo.url(), headers=headers).json()
        sent = client.send(request)
    first, second = named(captured.spans(), "GET", "POST")
    context = first.context
    version, trace_id, span_id, flags = received["traceparent"].split("-")
    assert (version, trace_id, span_id) == (
        "00",
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled
    assert received["x-mine"] == "1"
    assert headers == {"x-mine": "1"}
    assert "traceparent" not in request.headers
    assert sent.status_code == 200
    assert sent.json()["content-length"] == "7"
    assert sent.json()["traceparent"].split("-")[2] == f"{second.context.span_id:016x}"
    assert "b3" not in received
    assert "x-b3-traceid" not in received


def test_b3_multi_header_propagation(
    make_captured: Callable[..., CapturedTelemetry],
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """With ``tracing.propagation: [b3multi]`` the X-B3-* headers are sent, not traceparent."""
    captured = make_captured(tracing={"propagation": ["b3multi"]})
    make_instrumentor(captured.telemetry).instrument(client=client)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        received = client.get(echo.url()).json()
    span = only(captured.spans(), "GET")
    assert received["x-b3-traceid"] == f"{span.context.trace_id:032x}"
    assert received["x-b3-spanid"] == f"{span.context.span_id:016x}"
    assert received["x-b3-sampled"] == "1"
    assert "traceparent" not in received


def test_sampled_out_parent_propagates_the_decision(
    make_captured: Callable[..., CapturedTelemetry],
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """Under a sampled-out span nothing is recorded, but the not-sampled flag goes downstream."""
    captured = make_captured(tracing={"sampling": "always_off"})
    make_instrumentor(captured.telemetry).instrument(client=client)
    with captured.telemetry.get_tracer("test").start_as_current_span("request") as parent:
        received = client.get(echo.url()).json()
    assert captured.spans() == []
    _version, trace_id, _span_id, flags = received["traceparent"].split("-")
    assert trace_id == f"{parent.get_span_context().trace_id:032x}"
    assert not int(flags, 16) & 1  # not sampled
    assert _count(captured, "200") == 1


async def test_async_client(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, echo: EchoServer
) -> None:
    """AsyncClient: the same span, header and sample."""
    async with httpx.AsyncClient() as client:
        make_instrumentor().instrument(client=client)
        with captured.telemetry.get_tracer("test").start_as_current_span("request") as parent:
            received = (await client.delete(echo.url("/items/7"))).json()
    span = only(captured.spans(), "DELETE")
    assert is_child_of(span, parent)
    assert received["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"
    assert (span.attributes or {})["http.response.status_code"] == 200
    assert _count(captured, "200", method="DELETE") == 1


def test_duration_histogram(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """One observation per request, labelled by method, server address and status; requests
    outside any span are measured too (without a span or injected context)."""
    make_instrumentor().instrument(client=client)
    received = client.get(echo.url()).json()
    client.get(echo.url())
    client.put(echo.url("/status/503"))
    assert "traceparent" not in received
    assert captured.spans() == []
    assert _count(captured, "200") == 2
    assert _count(captured, "503", method="PUT") == 1
    total = captured.sample(
        f"{DURATION}_sum", method="GET", server_address="127.0.0.1", status="200"
    )
    assert total is not None
    assert 0 < total < 5
    assert "# TYPE http_client_request_duration_seconds histogram" in captured.metrics_text()


@pytest.mark.parametrize("status", [404, 500])
def test_error_status_codes(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
    status: int,
) -> None:
    """A 4xx or 5xx response makes the client span an error with ``error.type`` the code."""
    make_instrumentor().instrument(client=client)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        assert client.get(echo.url(f"/status/{status}")).status_code == status
    span = only(captured.spans(), "GET")
    attributes = span.attributes or {}
    assert attributes["http.response.status_code"] == status
    assert attributes["error.type"] == str(status)
    assert span.status.status_code is StatusCode.ERROR
    assert _count(captured, str(status)) == 1


def test_connection_refused_is_recorded_and_reraised(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
) -> None:
    """The ConnectError reaches the caller unchanged; the span carries it, the sample says
    ``status="error"``."""
    make_instrumentor().instrument(client=client)
    url = _refused_url()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request"), pytest.raises(httpx.ConnectError) as raised:
        client.get(url)
    assert raised.value.request.url == httpx.URL(url)
    span = only(captured.spans(), "GET")
    attributes = span.attributes or {}
    assert attributes["error.type"] == "httpx.ConnectError"
    assert "http.response.status_code" not in attributes
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    assert _count(captured, "error") == 1


def test_redirects_are_part_of_the_span(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """A followed redirect: one span, the final status, the context sent on every hop."""
    make_instrumentor().instrument(client=client)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        response = client.get(echo.url("/redirect"), follow_redirects=True)
    assert response.status_code == 200
    span = only(captured.spans(), "GET")
    assert (span.attributes or {})["http.response.status_code"] == 200
    assert response.json()["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"


def test_instrument_everything_and_uninstrument_restores(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, echo: EchoServer
) -> None:
    """``instrument()`` covers clients made before and after; a second call warns;
    ``uninstrument()`` puts the original methods back and records nothing more."""
    originals = (httpx.Client.__dict__["send"], httpx.AsyncClient.__dict__["send"])
    before = httpx.Client()
    instrumentor = make_instrumentor()
    instrumentor.instrument()
    assert instrumentor.is_instrumented
    with pytest.warns(RuntimeWarning, match="called twice"):
        instrumentor.instrument()
    after = httpx.Client()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request"):
        before.get(echo.url())
        after.post(echo.url())
    assert [s.name for s in named(captured.spans(), "GET", "POST")] == ["GET", "POST"]
    instrumentor.uninstrument()
    assert (httpx.Client.__dict__["send"], httpx.AsyncClient.__dict__["send"]) == originals
    captured.clear()
    with tracer.start_as_current_span("request"):
        received = before.get(echo.url()).json()
    assert [s.name for s in captured.spans()] == ["request"]
    assert "traceparent" not in received
    with pytest.warns(RuntimeWarning, match="nothing is instrumented"):
        instrumentor.uninstrument()
    before.close()
    after.close()


def test_one_client_only_and_uninstrument_it(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, echo: EchoServer
) -> None:
    """Per-client opt-in: other clients are untouched; undoing removes the instance patch."""
    with httpx.Client() as mine, httpx.Client() as other:
        instrumentor = make_instrumentor()
        instrumentor.instrument(client=mine)
        with pytest.warns(RuntimeWarning, match="already instrumented"):
            instrumentor.instrument(client=[mine])
        with captured.telemetry.get_tracer("test").start_as_current_span("request"):
            mine.get(echo.url())
            assert "traceparent" not in other.get(echo.url()).json()
        assert len(named(captured.spans(), "GET")) == 1
        instrumentor.uninstrument(client=mine)
        assert "send" not in vars(mine)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            instrumentor.uninstrument(client=mine)  # nothing left: silently nothing
    with pytest.raises(TypeError, match=r"httpx\.Client"):
        instrumentor.instrument(client=object())


def test_root_spans(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """``root_spans=True``: a request outside any span starts a trace of its own."""
    make_instrumentor(root_spans=True).instrument(client=client)
    received = client.get(echo.url()).json()
    span = only(captured.spans(), "GET")
    assert span.parent is None
    assert received["traceparent"].split("-")[1] == f"{span.context.trace_id:032x}"


def test_nonstandard_method_and_credentials(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """A method outside the standard set is ``_OTHER`` (span ``HTTP``); ``user:password@`` in
    the URL is redacted."""
    make_instrumentor().instrument(client=client)
    url = f"http://ada:hunter2@127.0.0.1:{echo.port}/echo"
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        client.request("PURGE", url)
    span = only(captured.spans(), "HTTP")
    attributes = span.attributes or {}
    assert attributes["http.request.method"] == "_OTHER"
    assert attributes["http.request.method_original"] == "PURGE"
    assert attributes["url.full"] == f"http://REDACTED:REDACTED@127.0.0.1:{echo.port}/echo"
    assert _count(captured, "200", method="_OTHER") == 1


def test_url_full_redacts_the_widened_and_encoded_names(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: httpx.Client,
    echo: EchoServer,
) -> None:
    """``url.full`` follows the server's query rules: the widened names, names containing
    ``token``/``secret``/``password`` and percent-encoded names, case-insensitively."""
    make_instrumentor().instrument(client=client)
    query = "apikey=a&%74oken=b&api%5Fkey=c&X-Refresh-Token=d&SIG=e&jwt=f&tokens=3&page=2"
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        client.get(echo.url(f"/echo?{query}"))
    full = dict(only(captured.spans(), "GET").attributes or {})["url.full"]
    assert full == (
        f"http://127.0.0.1:{echo.port}/echo?apikey=REDACTED&%74oken=REDACTED&api%5Fkey=REDACTED"
        "&X-Refresh-Token=REDACTED&SIG=REDACTED&jwt=REDACTED&tokens=3&page=2"
    )
