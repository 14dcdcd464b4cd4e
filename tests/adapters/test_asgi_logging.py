"""The request log line, trace-correlated application logs, secrets and streamed responses."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.applications import Starlette

from telemetry_web import Telemetry, TelemetryMiddleware

from ._support import (
    ENVIRONMENT,
    SERVICE,
    STREAM_CHUNKS,
    STREAM_GAP,
    ListSink,
    build_starlette,
    client_for,
    labels,
    scrape,
)
from .conftest import FinishedSpans, MakeTelemetry

pytestmark = pytest.mark.asyncio

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def starlette_app(tel: Telemetry, **kwargs: Any) -> Starlette:
    app = build_starlette(**kwargs)
    app.add_middleware(TelemetryMiddleware, telemetry=tel)
    return app


async def test_request_log_line_fields(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """One request log line with the documented fields, its ids equal to the exported span's."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.get(
            "/api/users/42",
            headers={"User-Agent": "adapter-tests/1.0", "X-Request-ID": "abc-123"},
        )
    assert response.status_code == 200
    (span,) = finished_spans(tel)
    (line,) = log_sink.request_lines()
    assert ISO_UTC.match(line["timestamp"]), line["timestamp"]
    expected = {
        "level": "info",
        "event": "request",
        "logger": "telemetry_web.request",
        "service": SERVICE,
        "environment": ENVIRONMENT,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "method": "GET",
        "route": "/api/users/{user_id}",
        "path": "/api/users/42",
        "status": 200,
        "client": "127.0.0.1",
        "user_agent": "adapter-tests/1.0",
        "request_id": "abc-123",
    }
    assert {k: line.get(k) for k in expected} == expected
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    json.dumps(line)  # every field renders as JSON


@pytest.mark.parametrize(
    ("path", "status", "level"),
    [
        ("/api/users/1", 200, "info"),
        ("/no/such/page", 404, "warning"),
        ("/teapot", 418, "warning"),
        ("/boom", 500, "error"),
    ],
)
async def test_request_log_level_follows_status(
    tel: Telemetry, log_sink: ListSink, path: str, status: int, level: str
) -> None:
    """The request line is info for 2xx, warning for 4xx and error for 5xx."""
    async with client_for(starlette_app(tel)) as client:
        assert (await client.get(path)).status_code == status
    tel.flush()
    (line,) = log_sink.request_lines()
    assert (line["status"], line["level"]) == (status, level)


async def test_request_log_level_threshold(
    make_telemetry: MakeTelemetry, log_sink: ListSink
) -> None:
    """``logging.levels`` for telemetry_web.request drops request lines below the level."""
    tel = make_telemetry(logging={"levels": {"telemetry_web.request": "warning"}})
    async with client_for(starlette_app(tel)) as client:
        await client.get("/api/users/1")
        await client.get("/no/such/page")
    tel.flush()
    assert [line["status"] for line in log_sink.request_lines()] == [404]


async def test_request_log_can_be_disabled(
    make_telemetry: MakeTelemetry, log_sink: ListSink
) -> None:
    """``logging.request_log: false`` writes no request lines but still records metrics."""
    tel = make_telemetry(logging={"request_log": False})
    async with client_for(starlette_app(tel)) as client:
        await client.get("/api/users/1")
        metrics = await scrape(client)
    tel.flush()
    assert log_sink.request_lines() == []
    assert metrics.value("http_requests_total", **labels("GET", "/api/users/{user_id}", 200)) == 1


async def test_app_logs_share_trace_and_request_id(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """structlog and stdlib records in an endpoint carry the request's trace_id and request_id."""
    app = starlette_app(tel, app_logger_telemetry=tel)
    async with client_for(app) as client:
        response = await client.get("/logs", headers={"X-Request-ID": "req-logs-1"})
    assert response.status_code == 200
    (span,) = finished_spans(tel)
    trace_id = format(span.context.trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    events = {e["logger"]: e for e in log_sink.server_events()}
    assert set(events) == {"api", "app", "telemetry_web.request"}
    structlog_event, stdlib_event = events["api"], events["app"]
    assert structlog_event["event"] == "structlog inside"
    assert structlog_event["level"] == "info"
    assert structlog_event["marker"] == "structlog"
    assert stdlib_event["event"] == "stdlib inside"
    assert stdlib_event["level"] == "warning"
    for event in (structlog_event, stdlib_event, events["telemetry_web.request"]):
        assert event["trace_id"] == trace_id
        assert event["span_id"] == span_id
        assert event["request_id"] == "req-logs-1"
        assert event["service"] == SERVICE
        assert event["environment"] == ENVIRONMENT
        assert ISO_UTC.match(event["timestamp"])


SECRETS = ("abc", "password=x", "auth-value-9f3e", "cookie-value-77aa")


def _scannable(event: dict[str, Any]) -> str:
    """The event as JSON without its random hex ids (which may spell 'abc' by chance)."""
    return json.dumps({k: v for k, v in event.items() if k not in ("trace_id", "span_id")})


async def test_secrets_stay_out_of_spans_and_logs(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """Authorization, Cookie and sensitive query values reach no span attribute and no log field."""
    auth = "Bearer auth-value-9f3e"
    cookie = "session=cookie-value-77aa"
    app = starlette_app(tel, app_logger_telemetry=tel)
    async with client_for(app) as client:
        for path in ("/api/users/5", "/logs", "/boom"):
            await client.get(
                f"{path}?token=abc&password=x&page=2",
                headers={"Authorization": auth, "Cookie": cookie, "X-Request-ID": "req-secrets"},
            )
    spans = finished_spans(tel)
    assert len(spans) == 3
    for span in spans:
        attributes = dict(span.attributes or {})
        assert attributes["url.query"] == "token=REDACTED&password=REDACTED&page=2"
        values = [str(v) for v in attributes.values()]
        values += [str(v) for e in span.events for v in (e.attributes or {}).values()]
        for value in values:
            for secret in SECRETS:
                assert secret not in value, (span.name, value)
    assert len(log_sink.request_lines()) == 3
    for event in log_sink.server_events():
        text = _scannable(event)
        for secret in SECRETS:
            assert secret not in text, text


async def test_streamed_response_duration_and_size(
    tel: Telemetry, finished_spans: FinishedSpans, log_sink: ListSink
) -> None:
    """A streamed response is timed to its last chunk and its size counts every chunk."""
    minimum = STREAM_GAP * (len(STREAM_CHUNKS) - 1)
    async with client_for(starlette_app(tel)) as client:
        response = await client.get("/stream")
        assert response.content == b"".join(STREAM_CHUNKS)
        metrics = await scrape(client)
    series = labels("GET", "/stream", 200)
    assert metrics.value("http_response_size_bytes_sum", **series) == len(response.content)
    assert metrics.value("http_request_duration_seconds_sum", **series) >= minimum
    assert metrics.value("http_request_duration_seconds_bucket", **series, le="0.1") == 0
    (span,) = finished_spans(tel)
    assert span.end_time is not None
    assert span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 >= minimum
    (line,) = log_sink.request_lines()
    assert line["duration_ms"] >= minimum * 1000
    assert line["status"] == 200


async def test_log_events_are_json_serialisable(
    tel: Telemetry, log_sink: ListSink, finished_spans: FinishedSpans
) -> None:
    """Every event the request path produces renders as JSON (the console sink's format)."""
    app = starlette_app(tel, app_logger_telemetry=tel)
    async with client_for(app) as client:
        for path in ("/api/users/1", "/logs", "/boom", "/stream"):
            await client.get(path)
    finished_spans(tel)
    for event in log_sink.server_events():
        assert json.loads(json.dumps(event))["event"] == event["event"]


# Query strings whose secret value ("abc") must not reach spans or logs, and the url.query expected.
SECRET_QUERIES = {
    "token": ("token=abc&page=2", "token=REDACTED&page=2"),
    "upper-case name": ("TOKEN=abc&page=2", "TOKEN=REDACTED&page=2"),
    "password and secret": ("password=abc&secret=abc", "password=REDACTED&secret=REDACTED"),
    "access_token": ("access_token=abc&page=2", "access_token=REDACTED&page=2"),
    "api_key": ("api_key=abc&page=2", "api_key=REDACTED&page=2"),
    "client_secret": ("client_secret=abc&page=2", "client_secret=REDACTED&page=2"),
    # How the name is spelled afterwards is the redactor's choice; the value must be gone.
    "percent-encoded name": ("to%6Ben=abc&page=2", None),
}


@pytest.mark.parametrize(("query", "redacted"), SECRET_QUERIES.values(), ids=SECRET_QUERIES.keys())
async def test_sensitive_query_values_are_redacted(
    tel: Telemetry,
    finished_spans: FinishedSpans,
    log_sink: ListSink,
    query: str,
    redacted: str | None,
) -> None:
    """Sensitive query values (names the log redaction also knows) reach no span or log."""
    async with client_for(starlette_app(tel)) as client:
        response = await client.get(f"/api/users/1?{query}", headers={"X-Request-ID": "req-q"})
        assert response.status_code == 200
    (span,) = finished_spans(tel)
    url_query = (span.attributes or {})["url.query"]
    assert isinstance(url_query, str)
    assert "abc" not in url_query
    assert "REDACTED" in url_query
    if redacted is not None:
        assert url_query == redacted
    (line,) = log_sink.request_lines()
    assert "abc" not in _scannable(line)
