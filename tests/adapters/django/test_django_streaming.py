"""Streamed responses are timed to the end of the stream, and their span ends there."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from django.http import HttpRequest, StreamingHttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from telemetry_web.django import DjangoTelemetryMiddleware
from telemetry_web.logging._context import CURRENT_REQUEST
from telemetry_web.testing import CapturedTelemetry

from . import views
from ._support import count, request_lines
from .conftest import MIDDLEWARE

BODY = b"".join(views.STREAM_CHUNKS)
SLEPT = views.STREAM_GAP * (len(views.STREAM_CHUNKS) - 1)


def _duration(span: ReadableSpan) -> float:
    assert span.start_time is not None
    assert span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


def _assert_timed_to_the_end(captured: CapturedTelemetry, route: str) -> None:
    (span,) = [s for s in captured.spans() if s.name == f"GET {route}"]
    assert _duration(span) >= SLEPT
    (line,) = request_lines(captured.logs())
    assert line["duration_ms"] >= SLEPT * 1000
    series = {"method": "GET", "route": route, "status": "200"}
    assert captured.sample("http_requests_total", **series) == 1
    assert captured.sample("http_response_size_bytes_sum", **series) == len(BODY)
    assert captured.sample("http_request_duration_seconds_sum", **series) >= SLEPT  # type: ignore[operator]
    assert captured.sample("http_requests_in_progress", method="GET", route=route) == 0


def test_sync_stream_finishes_when_consumed(captured: CapturedTelemetry) -> None:
    """Under the WSGI handler nothing is recorded until the stream is consumed and closed."""
    response = Client().get("/stream")
    assert response.streaming
    assert captured.spans() == []
    assert count(captured, "GET", "/stream", "200") is None
    assert captured.sample("http_requests_in_progress", method="GET", route="/stream") == 1
    assert b"".join(response.streaming_content) == BODY
    _assert_timed_to_the_end(captured, "/stream")
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert CURRENT_REQUEST.get() is None


def test_spans_made_while_streaming_join_the_request(captured: CapturedTelemetry) -> None:
    """The request span stays current while the stream is produced: chunk spans are children."""
    response = Client().get("/stream")
    b"".join(response.streaming_content)
    spans = captured.spans()
    (request_span,) = [s for s in spans if s.name == "GET /stream"]
    chunk_spans = [s for s in spans if s.name.startswith("chunk-")]
    assert len(chunk_spans) == len(views.STREAM_CHUNKS)
    for span in chunk_spans:
        assert span.parent is not None
        assert span.parent.span_id == request_span.context.span_id


async def test_async_stream_finishes_when_consumed(captured: CapturedTelemetry) -> None:
    """Under the ASGI handler an async stream is timed to its end too."""
    response = await AsyncClient().get("/stream-async")
    assert response.streaming
    assert captured.spans() == []
    chunks = [chunk async for chunk in response.streaming_content]
    assert b"".join(chunks) == BODY
    _assert_timed_to_the_end(captured, "/stream-async")
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_file_response_counted_when_closed(captured: CapturedTelemetry) -> None:
    """A FileResponse is sized and finished when the test client has read and closed it."""
    response = Client().get("/file")
    assert captured.spans() == []
    assert b"".join(response.streaming_content) == views.FILE_BODY
    series = {"method": "GET", "route": "/file", "status": "200"}
    assert captured.sample("http_response_size_bytes_sum", **series) == len(views.FILE_BODY)
    assert len(captured.spans()) == 1


def test_file_response_keeps_sendfile_under_wsgi(captured: CapturedTelemetry) -> None:
    """With ``wsgi.file_wrapper`` the file is left to the server; size from Content-Length."""
    middleware = DjangoTelemetryMiddleware(views.file)
    request = RequestFactory().get("/file", **{"wsgi.file_wrapper": object})
    response = middleware(request)
    assert response.file_to_stream is not None
    assert captured.spans() == []
    response.close()  # what the server does once the file is sent
    series = {"method": "GET", "route": "/file", "status": "200"}
    assert captured.sample("http_response_size_bytes_sum", **series) == len(views.FILE_BODY)
    assert len(captured.spans()) == 1
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_stream_failing_midway_records_the_exception(captured: CapturedTelemetry) -> None:
    """An exception raised while streaming marks the span, with the status already sent."""
    response = Client().get("/stream-fail")
    with pytest.raises(OSError, match="went away"):
        b"".join(response.streaming_content)
    (span,) = captured.spans()
    assert (span.attributes or {})["error.type"] == "OSError"
    assert (span.attributes or {})["http.response.status_code"] == 200
    (line,) = request_lines(captured.logs())
    assert line["level"] == "error"
    assert line["exception"]["type"] == "OSError"
    series = {"method": "GET", "route": "/stream-fail", "status": "200"}
    assert captured.sample("http_response_size_bytes_sum", **series) == len(b"first")


async def _async_stream_view(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"one"
        await asyncio.sleep(0)
        yield b"two"

    return StreamingHttpResponse(chunks())


async def test_close_in_another_context_detaches_quietly(
    captured: CapturedTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """As Django's ASGI handler does: stream in the request's task, close from elsewhere."""
    middleware = DjangoTelemetryMiddleware(_async_stream_view)
    request = RequestFactory().get("/anything")

    async def serve() -> StreamingHttpResponse:  # the request's task
        response = await middleware(request)
        assert trace.get_current_span().is_recording()
        assert b"".join([c async for c in response]) == b"onetwo"
        assert trace.get_current_span() is trace.INVALID_SPAN  # detached at the stream's end
        return response

    with caplog.at_level(logging.ERROR):
        response = await asyncio.create_task(serve())
        await sync_to_async(response.close)()
    assert [r for r in caplog.records if r.name.startswith("opentelemetry")] == []
    (span,) = captured.spans()
    assert span.name == "GET"
    assert count(captured, "GET", "<unmatched>", "200") == 1


async def test_close_without_iteration_in_another_context(
    captured: CapturedTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream the server never iterated (client gone) is still finished quietly at close."""
    middleware = DjangoTelemetryMiddleware(_async_stream_view)

    async def serve() -> StreamingHttpResponse:
        return await middleware(RequestFactory().get("/anything"))

    with caplog.at_level(logging.ERROR):
        response = await asyncio.create_task(serve())
        await sync_to_async(response.close)()
    assert [r for r in caplog.records if r.name.startswith("opentelemetry")] == []
    assert len(captured.spans()) == 1
    assert captured.sample("http_requests_in_progress", method="GET", route="<unmatched>") == 0


@override_settings(
    MIDDLEWARE=[MIDDLEWARE[0], "tests.adapters.django.middleware.ShortCircuitMiddleware"]
)
async def test_async_stream_with_a_sync_middleware_after_ours(
    captured: CapturedTelemetry, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync-only middleware after ours makes Django run ours in a thread under ASGI; the
    stream, iterated in the event loop, is still timed whole and detaches quietly."""
    with caplog.at_level(logging.ERROR):
        response = await AsyncClient().get("/stream-async")
        assert b"".join([chunk async for chunk in response.streaming_content]) == BODY
    assert [r for r in caplog.records if r.name.startswith("opentelemetry")] == []
    _assert_timed_to_the_end(captured, "/stream-async")
