"""Exceptions, handled error responses and request ids through the ASGI middleware."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import NoReturn

import pytest
from opentelemetry.trace import StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from telemetry_web import Telemetry, TelemetryMiddleware

from ._support import (
    ListSink,
    build_fastapi,
    build_starlette,
    call_asgi,
    client_for,
    labels,
    scrape,
)
from .conftest import FinishedSpans, MakeTelemetry

pytestmark = pytest.mark.asyncio

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
INSTALLS = ["add_middleware", "wrapped"]


def install(app: Starlette, tel: Telemetry, how: str) -> ASGIApp:
    if how == "add_middleware":
        app.add_middleware(TelemetryMiddleware, telemetry=tel)
        return app
    return TelemetryMiddleware(app, telemetry=tel)


@pytest.mark.parametrize("how", INSTALLS)
async def test_unhandled_exception_is_a_recorded_500(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink, how: str
) -> None:
    """An endpoint raising RuntimeError gives a 500 with a request id, recorded as 500."""
    app = install(build_starlette(), tel, how)
    async with client_for(app) as client:
        response = await client.get("/boom")
        assert response.status_code == 500
        request_id = response.headers.get("x-request-id")
        assert request_id is not None
        assert GENERATED_ID.match(request_id)
        metrics = await scrape(client)

    assert metrics.label_sets("http_requests_total") == [labels("GET", "/boom", 500)]
    assert metrics.value("http_requests_total", **labels("GET", "/boom", 500)) == 1
    assert metrics.value("http_requests_in_progress", service="adapters-test",
                         environment="test", method="GET", route="/boom") == 0  # fmt: skip

    (span,) = finished_spans(tel)
    assert span.name == "GET /boom"
    assert span.status.status_code is StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "RuntimeError"
    assert attributes["http.response.status_code"] == 500
    assert attributes["http.request.header.x-request-id"] == request_id
    exception_events = [e for e in span.events if e.name == "exception"]
    assert len(exception_events) == 1
    event_attributes = dict(exception_events[0].attributes or {})
    assert event_attributes["exception.type"] == "RuntimeError"
    assert event_attributes["exception.message"] == "kaboom"

    (line,) = log_sink.request_lines()
    assert line["level"] == "error"
    assert line["status"] == 500
    assert line["request_id"] == request_id
    assert line["exception"]["type"] == "RuntimeError"
    assert line["exception"]["message"] == "kaboom"


@pytest.mark.parametrize("how", INSTALLS)
async def test_fastapi_unhandled_exception(
    tel: Telemetry, finished_spans: FinishedSpans, how: str
) -> None:
    """A FastAPI endpoint raising gives a 500 with a request id and one ERROR span."""
    app = install(build_fastapi(), tel, how)
    async with client_for(app) as client:
        response = await client.get("/v2/fail")
        assert response.status_code == 500
        assert response.headers.get("x-request-id")
        metrics = await scrape(client)
    assert metrics.total("http_requests_total") == 1
    assert [s.labels["status"] for s in metrics.named("http_requests_total")] == ["500"]
    (span,) = finished_spans(tel)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"


@pytest.mark.parametrize("how", INSTALLS)
@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/missing", 404, "no such thing"),
        ("/teapot", 418, "I'm a teapot"),
    ],
)
async def test_handled_exceptions_keep_their_status(
    tel: Telemetry,
    finished_spans: FinishedSpans,
    log_sink: ListSink,
    how: str,
    path: str,
    status: int,
    body: str,
) -> None:
    """Exceptions turned into responses by handlers are recorded with the status the client got."""
    app = install(build_starlette(), tel, how)
    async with client_for(app) as client:
        response = await client.get(path)
        assert response.status_code == status
        assert body in response.text
        assert response.headers.get("x-request-id")
        metrics = await scrape(client)
    assert metrics.label_sets("http_requests_total") == [labels("GET", path, status)]
    (span,) = finished_spans(tel)
    assert (span.attributes or {})["http.response.status_code"] == status
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in (span.attributes or {})
    (line,) = log_sink.request_lines()
    assert line["status"] == status
    assert line["level"] == "warning"


# --- request ids ---------------------------------------------------------------------------------


async def test_valid_incoming_request_id_is_kept(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """A valid incoming X-Request-ID is echoed and used in the request log line and the span."""
    app = install(build_starlette(), tel, "add_middleware")
    async with client_for(app) as client:
        response = await client.get("/api/users/1", headers={"X-Request-ID": "abc-123"})
    assert response.headers.get_list("x-request-id") == ["abc-123"]
    (span,) = finished_spans(tel)  # flushes the log pipeline too
    (line,) = log_sink.request_lines()
    assert line["request_id"] == "abc-123"
    assert (span.attributes or {})["http.request.header.x-request-id"] == "abc-123"


INVALID_REQUEST_IDS = {
    "too long": b"a" * 129,
    "space": b"abc 123",
    "newline": b"abc\n123",
    "carriage return": b"abc\r\nX-Injected: 1",
    "tab": b"abc\t123",
    "quote": b'abc"123',
    "empty": b"",
    "non-UTF-8": b"abc\xff123",
}


@pytest.mark.parametrize("value", INVALID_REQUEST_IDS.values(), ids=INVALID_REQUEST_IDS.keys())
async def test_invalid_incoming_request_id_is_replaced(
    tel: Telemetry, log_sink: ListSink, value: bytes
) -> None:
    """An invalid incoming X-Request-ID is replaced by a generated 32-hex id, also in the log."""
    app = install(build_starlette(), tel, "add_middleware")
    response = await call_asgi(app, "/api/users/1", headers=[(b"x-request-id", value)])
    assert response.status == 200
    echoed = [v for k, v in response.headers if k.lower() == b"x-request-id"]
    assert len(echoed) == 1
    request_id = echoed[0].decode("latin-1")
    assert GENERATED_ID.match(request_id), request_id
    tel.flush()
    (line,) = log_sink.request_lines()
    assert line["request_id"] == request_id


@pytest.mark.parametrize("how", INSTALLS)
@pytest.mark.parametrize(("path", "status"), [("/no/such/page", 404), ("/boom", 500)])
async def test_request_id_on_error_responses(
    tel: Telemetry, how: str, path: str, status: int
) -> None:
    """404 and 500 responses carry the request id, the incoming one when it is valid."""
    app = install(build_starlette(), tel, how)
    async with client_for(app) as client:
        generated = await client.get(path)
        echoed = await client.get(path, headers={"X-Request-ID": "req-42"})
    assert generated.status_code == status
    assert GENERATED_ID.match(generated.headers["x-request-id"])
    assert echoed.status_code == status
    assert echoed.headers.get_list("x-request-id") == ["req-42"]


async def test_request_ids_differ_between_requests(tel: Telemetry) -> None:
    """Every request without an incoming id gets a fresh one."""
    app = install(build_starlette(), tel, "add_middleware")
    async with client_for(app) as client:
        ids = {(await client.get("/api/users/1")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


async def test_custom_request_id_header(make_telemetry: MakeTelemetry, log_sink: ListSink) -> None:
    """``http.request_id_header`` renames the header that is read and echoed."""
    tel = make_telemetry(http={"request_id_header": "X-Correlation-ID"})
    app = install(build_starlette(), tel, "add_middleware")
    async with client_for(app) as client:
        response = await client.get("/api/users/1", headers={"X-Correlation-ID": "corr-7"})
    assert response.headers["x-correlation-id"] == "corr-7"
    assert "x-request-id" not in response.headers
    tel.flush()
    (line,) = log_sink.request_lines()
    assert line["request_id"] == "corr-7"


# --- handlers outside the middleware, bare ASGI apps, disconnects --------------------------------


async def _boom_endpoint(request: Request) -> NoReturn:
    raise RuntimeError("kaboom")


async def _service_unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "unavailable"}, status_code=503)


@pytest.mark.parametrize("how", INSTALLS)
async def test_catch_all_exception_handler_status_is_recorded(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink, how: str
) -> None:
    """An app-level ``Exception`` handler answering 503 is recorded as the 503 the client got."""
    app = Starlette(
        routes=[Route("/boom", _boom_endpoint)],
        exception_handlers={Exception: _service_unavailable},
    )
    async with client_for(install(app, tel, how)) as client:
        response = await client.get("/boom")
        metrics = await scrape(client)
    assert response.status_code == 503
    assert response.json() == {"error": "unavailable"}
    assert metrics.label_sets("http_requests_total") == [labels("GET", "/boom", 503)]
    (span,) = finished_spans(tel)
    assert (span.attributes or {})["http.response.status_code"] == 503
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    (line,) = log_sink.request_lines()
    assert line["status"] == 503


async def _bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/raise":
        raise ValueError("bare failure")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"bare"})


async def test_bare_asgi_app_exception_gets_our_500(
    tel: Telemetry, finished_spans: FinishedSpans
) -> None:
    """A plain ASGI callable that raises gets the middleware's 500, with a request id."""
    app = TelemetryMiddleware(_bare_app, telemetry=tel)
    async with client_for(app) as client:
        ok = await client.get("/fine")
        failed = await client.get("/raise")
        metrics = await scrape(client)
    assert ok.status_code == 200
    assert GENERATED_ID.match(ok.headers["x-request-id"])
    assert failed.status_code == 500
    assert failed.text == "Internal Server Error"
    assert GENERATED_ID.match(failed.headers["x-request-id"])
    assert metrics.value("http_requests_total", **labels("GET", "<unmatched>", 500)) == 1
    assert metrics.value("http_requests_total", **labels("GET", "<unmatched>", 200)) == 1
    errors = [s for s in finished_spans(tel) if s.status.status_code is StatusCode.ERROR]
    assert [(s.attributes or {})["error.type"] for s in errors] == ["ValueError"]


async def _waits_for_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def test_client_disconnect_before_response_is_499(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """A client that leaves before any response is recorded with status 499."""
    app = TelemetryMiddleware(_waits_for_disconnect, telemetry=tel)
    response = await call_asgi(app, "/slow", disconnect=True)
    assert response.status == 0
    (span,) = finished_spans(tel)
    assert (span.attributes or {})["http.response.status_code"] == 499
    (line,) = log_sink.request_lines()
    assert line["status"] == 499
    async with client_for(app) as client:
        metrics = await scrape(client)
    assert metrics.label_sets("http_requests_total") == [labels("GET", "<unmatched>", 499)]


async def test_exception_mid_stream_keeps_the_sent_status(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """An exception after the response started keeps the status already sent, as an error."""

    async def broken(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            raise RuntimeError("stream broke")

        return StreamingResponse(chunks())

    app = Starlette(routes=[Route("/broken", broken)])
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    async with client_for(app) as client:
        response = await client.get("/broken")
        metrics = await scrape(client)
    assert response.status_code == 200
    assert metrics.label_sets("http_requests_total") == [labels("GET", "/broken", 200)]
    (span,) = finished_spans(tel)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert (span.attributes or {})["http.response.status_code"] == 200
    (line,) = log_sink.request_lines()
    assert (line["status"], line["level"]) == (200, "error")


@pytest.mark.parametrize("handler_key", [500, Exception])
@pytest.mark.parametrize("how", INSTALLS)
async def test_app_error_handler_runs_once_per_exception(
    tel: Telemetry, how: str, handler_key: object
) -> None:
    """The app's 500/``Exception`` handler runs once per exception, as without the middleware."""
    calls: list[str] = []

    async def counting_handler(request: Request, exc: Exception) -> Response:
        calls.append(request.url.path)  # e.g. an error reporter: must not report twice
        return JSONResponse({"error": "unavailable"}, status_code=503)

    app = Starlette(
        routes=[Route("/boom", _boom_endpoint)], exception_handlers={handler_key: counting_handler}
    )
    async with client_for(install(app, tel, how)) as client:
        response = await client.get("/boom")
    assert response.status_code == 503
    assert response.headers.get("x-request-id")
    assert calls == ["/boom"]
