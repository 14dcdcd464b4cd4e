"""Spans, metrics, log lines, request ids, built-in endpoints and exclusion, through Django."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from telemetry_web.django import DjangoTelemetryMiddleware
from telemetry_web.logging._context import CURRENT_REQUEST
from telemetry_web.testing import CapturedTelemetry

from ..._metrics import Scrape
from ._support import count, labels, request_lines
from .conftest import MIDDLEWARE, Fetch, MakeCaptured

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
USER_ROUTE = "/api/v1/users/<int:user_id>"


def test_one_server_span_with_attributes(captured: CapturedTelemetry, fetch: Fetch) -> None:
    """A request is one SERVER span named by method and route, with the HTTP attributes."""
    response = fetch(
        "/api/v1/users/7",
        query_params={"token": "abc", "page": "2"},
        headers={"User-Agent": "django-tests/1.0"},
    )
    assert response.status_code == 200
    (span,) = captured.spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == f"GET {USER_ROUTE}"
    assert span.parent is None
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": USER_ROUTE,
        "url.path": "/api/v1/users/7",
        "url.scheme": "http",
        "url.query": "token=REDACTED&page=2",
        "http.request.header.x-request-id": response["X-Request-ID"],
        "server.address": "testserver",
        "client.address": "127.0.0.1",
        "user_agent.original": "django-tests/1.0",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
        # WSGI: SERVER_NAME/SERVER_PORT; ASGI: the Host header, which wins
        **({"server.port": 80} if fetch.mode == "wsgi" else {}),  # type: ignore[attr-defined]
    }
    assert span.status.is_ok


def test_incoming_trace_context_is_continued(captured: CapturedTelemetry, fetch: Fetch) -> None:
    """A valid traceparent makes the request span a child of the caller's span."""
    fetch("/", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    (span,) = captured.spans()
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID


def test_metrics_sizes_and_in_progress(captured: CapturedTelemetry, fetch: Fetch) -> None:
    """Request and response sizes are observed; the in-progress gauge returns to zero."""
    response = fetch("/api/echo", "POST", data=b"hello", content_type="text/plain")
    assert response.status_code == 201
    assert response.content == b"echo:hello"
    series = {"method": "POST", "route": "/api/echo", "status": "201"}
    assert captured.sample("http_requests_total", **series) == 1
    assert captured.sample("http_request_duration_seconds_count", **series) == 1
    assert captured.sample("http_request_size_bytes_sum", **series) == 5
    assert captured.sample("http_response_size_bytes_sum", **series) == 10
    assert captured.sample("http_requests_in_progress", method="POST", route="/api/echo") == 0


def test_one_request_log_line(captured: CapturedTelemetry, fetch: Fetch) -> None:
    """Each request logs one line with its outcome, ids and timing."""
    response = fetch("/teapot", headers={"User-Agent": "ua/1"})
    (line,) = request_lines(captured.logs())
    (span,) = captured.spans()
    assert line["event"] == "request"
    assert line["level"] == "warning"
    assert line["method"] == "GET"
    assert line["route"] == "/teapot"
    assert line["path"] == "/teapot"
    assert line["status"] == 418
    assert line["client"] == "127.0.0.1"
    assert line["user_agent"] == "ua/1"
    assert line["request_id"] == response["X-Request-ID"]
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    assert line["service"] == "django-test"
    assert line["duration_ms"] >= 0


def test_logs_inside_a_view_carry_the_request_ids(
    captured: CapturedTelemetry, fetch: Fetch
) -> None:
    """structlog and stdlib lines logged by a view carry the request's trace and request ids."""
    response = fetch("/logs")
    events = captured.logs()
    (line,) = request_lines(events)
    inside = [e for e in events if e.get("logger") in ("tests.app", "tests.stdlib")]
    assert [e["event"] for e in inside] == ["structlog inside", "stdlib inside"]
    for event in inside:
        assert event["trace_id"] == line["trace_id"]
        assert event["span_id"] == line["span_id"]
        assert event["request_id"] == response["X-Request-ID"]


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [("abc-123", True), ("a" * 128, True), ("bad id!", False), ("a" * 129, False), (None, False)],
)
@pytest.mark.parametrize("path", ["/", "/nowhere", "/boom", "/teapot"])
def test_request_id_echoed_on_every_response(
    captured: CapturedTelemetry, fetch: Fetch, path: str, incoming: str | None, kept: bool
) -> None:
    """A valid X-Request-ID is echoed, an invalid one replaced, on 2xx, 4xx and 500 alike."""
    headers = {"X-Request-ID": incoming} if incoming is not None else {}
    response = fetch(path, headers=headers)
    echoed = response["X-Request-ID"]
    if kept:
        assert echoed == incoming
    else:
        assert GENERATED_ID.match(echoed)
    (line,) = request_lines(captured.logs())
    assert line["request_id"] == echoed


def test_request_id_header_name_is_configurable(make_captured: MakeCaptured, fetch: Fetch) -> None:
    """``http.request_id_header`` names the header read and echoed."""
    make_captured(http={"request_id_header": "X-Correlation-ID"})
    response = fetch("/", headers={"X-Correlation-ID": "corr-1"})
    assert response["X-Correlation-ID"] == "corr-1"
    assert "X-Request-ID" not in response


@pytest.mark.parametrize("path", ["/metrics", "/health", "/ready"])
def test_builtin_endpoints_answer_get_and_head(
    captured: CapturedTelemetry, fetch: Fetch, path: str
) -> None:
    """/metrics, /health and /ready answer GET and HEAD from the middleware, unrecorded."""
    get = fetch(path)
    head = fetch(path, "HEAD")
    assert get.status_code == head.status_code == 200
    assert head.content == b""
    assert int(head["Content-Length"]) > 0
    assert get["Content-Type"] == head["Content-Type"]
    if path == "/metrics":
        assert get["Content-Type"].startswith("text/plain")
        assert "http_requests_total" in get.content.decode()
    else:
        assert get.json()["status"] in ("ok", "ready")
    assert captured.spans() == []
    assert request_lines(captured.logs()) == []
    assert "X-Request-ID" not in get


def test_builtin_endpoint_other_method_passes_through(
    captured: CapturedTelemetry, fetch: Fetch
) -> None:
    """POST /metrics is not answered by the middleware and, being excluded, is not recorded."""
    assert fetch("/metrics", "POST").status_code == 404
    assert captured.spans() == []
    assert Scrape.parse(captured.metrics_text()).counts() == {}


def test_metrics_endpoint_reports_itself_in_exposition(captured: CapturedTelemetry) -> None:
    """The /metrics body parses, and counts the requests made before it exactly."""
    client = Client()
    client.get("/")
    client.get("/")
    client.get("/nowhere")
    scrape = Scrape.parse(client.get("/metrics").content.decode())
    assert scrape.value("http_requests_total", **labels("GET", "/", 200)) == 2
    assert scrape.value("http_requests_total", **labels("GET", "<unmatched>", 404)) == 1


def test_excluded_paths_pass_through(make_captured: MakeCaptured, fetch: Fetch) -> None:
    """A path in ``http.exclude_paths`` reaches the view and is not recorded at all."""
    captured = make_captured(http={"exclude_paths": ["/static/*"]})
    response = fetch("/static/app.css")
    assert response.status_code == 200
    assert "X-Request-ID" not in response
    assert captured.spans() == []
    assert request_lines(captured.logs()) == []
    assert Scrape.parse(captured.metrics_text()).counts() == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain/1.0", "plain/1.0"),
        ("caf\u00c3\u00a9/2", "caf\u00e9/2"),  # UTF-8 bytes as WSGI hands them over (latin-1)
        ("\u00ff\u00fe", None),  # not UTF-8: absent
        ("\u20ac", None),  # not even latin-1: absent
    ],
)
def test_headers_decoded_defensively(
    captured: CapturedTelemetry, raw: str, expected: str | None
) -> None:
    """META values are re-encoded as latin-1 and decoded as strict UTF-8, or left out."""
    Client().get("/", HTTP_USER_AGENT=raw)
    (span,) = captured.spans()
    assert (span.attributes or {}).get("user_agent.original") == expected
    (line,) = request_lines(captured.logs())
    assert line["user_agent"] == expected


def test_context_is_clean_after_a_request(captured: CapturedTelemetry) -> None:
    """No span stays current and no request id stays bound once the response is returned."""
    Client().get("/")
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert CURRENT_REQUEST.get() is None


@override_settings(MIDDLEWARE=[MIDDLEWARE[0], *MIDDLEWARE])
def test_middleware_listed_twice_records_once(captured: CapturedTelemetry, fetch: Fetch) -> None:
    """A second copy of the middleware passes the request through: one span, one count."""
    fetch("/")
    assert len(captured.spans()) == 1
    assert count(captured, "GET", "/", "200") == 1


def test_middleware_follows_the_handler_mode(captured: CapturedTelemetry) -> None:
    """Sync under the WSGI handler, async under ASGI: Django adds no adapter around or after it."""
    sync_client = Client()
    sync_client.get("/")
    sync_middleware = sync_client.handler._middleware_chain.__wrapped__
    assert isinstance(sync_middleware, DjangoTelemetryMiddleware)
    assert sync_middleware.async_mode is False

    async def load() -> Any:
        client = AsyncClient()
        await client.get("/api/hello-async")
        return client.handler._middleware_chain.__wrapped__

    async_middleware = asyncio.run(load())
    assert async_middleware.async_mode is True
    assert iscoroutinefunction(async_middleware)
    after = async_middleware.get_response.__wrapped__  # CommonMiddleware, not a SyncToAsync
    assert type(after).__name__ == "CommonMiddleware"
    assert after.async_mode is True


def test_telemetry_given_to_the_constructor(make_captured: MakeCaptured) -> None:
    """``DjangoTelemetryMiddleware(get_response, telemetry=...)`` records there, not in the
    default."""
    default = make_captured()
    own = make_captured(service="own")

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(b"hi")

    middleware = DjangoTelemetryMiddleware(view, telemetry=own.telemetry)
    response = middleware(RequestFactory().get("/"))
    assert response.status_code == 200
    assert len(own.spans()) == 1
    assert default.spans() == []


def test_constructor_with_async_get_response(captured: CapturedTelemetry) -> None:
    """With an async next handler the middleware is a coroutine function and records awaited."""

    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(b"hi", status=202)

    middleware = DjangoTelemetryMiddleware(view)
    assert iscoroutinefunction(middleware)
    response = asyncio.run(middleware(RequestFactory().get("/")))
    assert response.status_code == 202
    assert count(captured, "GET", "/", "202") == 1
