"""The Flask extension through Flask's test client: route templates, error handling, streaming."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask, Response, abort, send_file, stream_with_context
from flask.testing import FlaskClient
from opentelemetry.trace import StatusCode

from telemetry_web.flask import FlaskState
from telemetry_web.testing import CapturedTelemetry

from .._metrics import Scrape
from ._wsgi_support import (
    BASE_LABELS,
    FILE_BODY,
    FLASK_CONFIG,
    STREAM_CHUNKS,
    STREAM_GAP,
    UNMATCHED,
    capture_flask,
    data_file,
    labels,
    make_environ,
    request_lines,
)

USER_RULE = "/api/users/<int:user_id>"


def build_app() -> Flask:
    """A Flask app with every kind of route these tests need (a blueprint, a nested one)."""
    app = Flask("flask_tests")
    app.config["TESTING"] = False  # Flask renders 500s itself, as in production

    @app.route(USER_RULE, methods=["GET", "POST"])
    def user(user_id: int) -> dict[str, Any]:
        return {"id": user_id}

    @app.get("/docs/")
    def docs() -> str:
        return "docs"

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("kaboom")

    @app.get("/invalid")
    def invalid() -> str:
        raise ValueError("not a number")

    @app.errorhandler(ValueError)
    def unprocessable(exc: ValueError) -> tuple[str, int]:
        return f"unprocessable: {exc}", 422

    @app.get("/unavailable")
    def unavailable() -> str:
        raise KeyError("backend")

    @app.errorhandler(KeyError)
    def service_unavailable(exc: KeyError) -> tuple[str, int]:
        return "try later", 503

    @app.get("/missing")
    def missing() -> str:
        abort(404)

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            for i, chunk in enumerate(STREAM_CHUNKS):
                if i:
                    time.sleep(STREAM_GAP)
                logging.getLogger("stream.stdlib").warning("chunk %d", i)
                yield chunk

        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/stream-fail")
    def stream_fail() -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"first"
            raise RuntimeError("stream broke")

        return Response(chunks(), mimetype="text/plain")

    @app.get("/download")
    def download() -> Response:
        return send_file(data_file(), mimetype="application/octet-stream")

    @app.get("/in-progress")
    def in_progress() -> dict[str, Any]:
        telemetry = app.extensions["telemetry_web"].telemetry
        value = telemetry.registry.get_sample_value(
            "http_requests_in_progress", {**BASE_LABELS, "method": "GET", "route": "/in-progress"}
        )
        return {"in_progress": value}

    admin = Blueprint("admin", __name__, url_prefix="/admin")

    @admin.get("/reports/<name>")
    def report(name: str) -> str:
        return name

    audit = Blueprint("audit", __name__, url_prefix="/audit")

    @audit.get("/<int:year>")
    def audit_year(year: int) -> str:
        return str(year)

    admin.register_blueprint(audit)
    app.register_blueprint(admin)
    return app


@pytest.fixture
def app() -> Flask:
    return build_app()


@pytest.fixture
def captured(app: Flask) -> Iterator[CapturedTelemetry]:
    """``Telemetry(app, config)`` recording into memory, shut down after the test."""
    capture_ = capture_flask(app, FLASK_CONFIG)
    yield capture_
    capture_.close()


@pytest.fixture
def client(app: Flask, captured: CapturedTelemetry) -> FlaskClient:
    return app.test_client()


def scrape(client: FlaskClient) -> Scrape:
    response = client.get("/metrics", buffered=True)
    assert response.status_code == 200
    return Scrape.parse(response.text)


# --- route templates -----------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/users/3", 200, USER_RULE),
    ("HEAD", "/api/users/3", 200, USER_RULE),
    ("POST", "/api/users/3", 200, USER_RULE),
    ("GET", "/admin/reports/q1", 200, "/admin/reports/<name>"),
    ("GET", "/admin/audit/2024", 200, "/admin/audit/<int:year>"),
    ("GET", "/api/users/abc", 404, UNMATCHED),
    ("GET", "/nowhere", 404, UNMATCHED),
    ("DELETE", "/api/users/3", 405, USER_RULE),
    ("GET", "/docs", 308, UNMATCHED),
]


@pytest.mark.parametrize(("method", "path", "status", "route"), ROUTES)
def test_route_label_is_the_rule_template(
    client: FlaskClient, captured: CapturedTelemetry, method: str, path: str, status: int,
    route: str,
) -> None:  # fmt: skip
    """Requests are labelled by Flask's rule (blueprint prefixes included), a 405 by the rule its
    path matched, else <unmatched> (strict-slash redirects too: werkzeug gives no rule)."""
    response = client.open(path, method=method, buffered=True)
    assert response.status_code == status
    metrics = scrape(client)
    assert metrics.label_sets("http_requests_total") == [labels(method, route, status)]
    assert metrics.value("http_requests_total", **labels(method, route, status)) == 1
    (span,) = captured.spans()
    assert span.name == (method if route == UNMATCHED else f"{method} {route}")
    (line,) = request_lines(captured.logs())
    assert (line["route"], line["path"], line["status"]) == (route, path, status)
    assert line["request_id"] == response.headers["X-Request-ID"]


def test_route_is_known_while_the_view_runs(client: FlaskClient) -> None:
    """The template is resolved before the view runs: the in-progress gauge carries it."""
    response = client.get("/in-progress", buffered=True)
    assert response.json == {"in_progress": 1.0}


def test_route_cache_is_bounded(app: Flask, captured: CapturedTelemetry) -> None:
    """Scanning random paths cannot grow the per-app route cache past its bound."""
    state: FlaskState = app.extensions["telemetry_web"]
    base = make_environ("/")
    for i in range(5000):
        assert state.resolve_route({**base, "PATH_INFO": f"/scan/{i}"}) is None
    assert len(state._routes) <= 4096
    assert state.resolve_route({**base, "PATH_INFO": "/api/users/1"}) == USER_RULE


def test_builtin_endpoints_are_answered_before_flask(client: FlaskClient, app: Flask) -> None:
    """/health is answered by the middleware: no view, no before_request, no recording."""
    called: list[str] = []
    app.before_request(lambda: called.append("before"))
    response = client.get("/health", buffered=True)
    assert response.status_code == 200
    assert called == []
    client.get("/api/users/1", buffered=True)
    assert called == ["before"]


# --- errors --------------------------------------------------------------------------------------


def test_errorhandler_status_is_recorded_without_the_handled_exception(
    client: FlaskClient, captured: CapturedTelemetry
) -> None:
    """An errorhandler answering 422 counts a 422; the handled exception is not recorded, as
    with every other framework's exception handlers."""
    response = client.get("/invalid", buffered=True)
    assert response.status_code == 422
    assert response.headers["X-Request-ID"]
    assert scrape(client).value("http_requests_total", **labels("GET", "/invalid", 422)) == 1
    (span,) = captured.spans()
    assert (span.attributes or {})["http.response.status_code"] == 422
    assert "error.type" not in (span.attributes or {})
    assert span.status.status_code is StatusCode.UNSET
    assert [e for e in span.events if e.name == "exception"] == []
    (line,) = request_lines(captured.logs())
    assert (line["status"], line["level"]) == (422, "warning")
    assert "exception" not in line


def test_errorhandler_answering_5xx_is_an_error(
    client: FlaskClient, captured: CapturedTelemetry
) -> None:
    """A handled exception answered with a 5xx marks the span and the log line as errors, with
    the status as the error type."""
    assert client.get("/unavailable", buffered=True).status_code == 503
    (span,) = captured.spans()
    assert (span.attributes or {})["error.type"] == "503"
    assert span.status.status_code is StatusCode.ERROR
    (line,) = request_lines(captured.logs())
    assert (line["status"], line["level"]) == (503, "error")
    assert "exception" not in line


def test_abort_is_a_status_not_an_exception(
    client: FlaskClient, captured: CapturedTelemetry
) -> None:
    """abort(404) in a matched view keeps the rule template and records no exception."""
    assert client.get("/missing", buffered=True).status_code == 404
    (span,) = captured.spans()
    assert span.name == "GET /missing"
    assert [e for e in span.events if e.name == "exception"] == []
    assert request_lines(captured.logs())[0]["level"] == "warning"


def test_unhandled_exception_is_a_500_with_request_id(
    client: FlaskClient, captured: CapturedTelemetry
) -> None:
    """Flask's rendered 500 carries the request id; the exception is on span and log line."""
    response = client.get("/boom", buffered=True)
    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    assert scrape(client).value("http_requests_total", **labels("GET", "/boom", 500)) == 1
    (span,) = captured.spans()
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert span.status.status_code is StatusCode.ERROR
    (line,) = request_lines(captured.logs())
    assert (line["status"], line["level"], line["request_id"]) == (500, "error", request_id)
    assert line["exception"]["message"] == "kaboom"


@pytest.mark.parametrize("setting", ["TESTING", "PROPAGATE_EXCEPTIONS"])
def test_propagated_exception_is_still_recorded(
    app: Flask, captured: CapturedTelemetry, setting: str
) -> None:
    """In testing mode or with PROPAGATE_EXCEPTIONS the exception escapes, recorded as a 500."""
    app.config[setting] = True
    with pytest.raises(RuntimeError, match="kaboom"):
        app.test_client().get("/boom", buffered=True)
    (span,) = captured.spans()
    assert (span.attributes or {})["http.response.status_code"] == 500
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    (line,) = request_lines(captured.logs())
    assert line["exception"]["type"] == "RuntimeError"


# --- streaming and files -------------------------------------------------------------------------


def test_stream_with_context_is_timed_to_the_end(
    client: FlaskClient, captured: CapturedTelemetry
) -> None:
    """A stream_with_context body is timed to its last chunk; its lines share the request's ids."""
    response = client.get("/stream", buffered=True)
    assert response.data == b"".join(STREAM_CHUNKS)
    minimum = STREAM_GAP * (len(STREAM_CHUNKS) - 1)
    (span,) = captured.spans()
    assert span.end_time is not None
    assert span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 >= minimum
    events = captured.logs()
    (line,) = request_lines(events)
    assert line["duration_ms"] >= minimum * 1000
    chunk_lines = [e for e in events if e.get("logger") == "stream.stdlib"]
    assert len(chunk_lines) == len(STREAM_CHUNKS)
    assert {(e["trace_id"], e["request_id"]) for e in chunk_lines} == {
        (line["trace_id"], line["request_id"])
    }
    series = labels("GET", "/stream", 200)
    assert scrape(client).value("http_request_duration_seconds_sum", **series) >= minimum


def test_exception_mid_stream_is_recorded_and_reraised(
    client: FlaskClient, captured: CapturedTelemetry
) -> None:
    """A generator failing after its first chunk re-raises; the sent 200 is kept, as an error."""
    with pytest.raises(RuntimeError, match="stream broke"):
        client.get("/stream-fail", buffered=True)
    (span,) = captured.spans()
    assert (span.attributes or {})["http.response.status_code"] == 200
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert request_lines(captured.logs())[0]["exception"]["message"] == "stream broke"


def test_send_file_is_served_and_sized(client: FlaskClient, captured: CapturedTelemetry) -> None:
    """send_file works through the middleware and its size is recorded."""
    response = client.get("/download", buffered=True)
    assert response.data == FILE_BODY
    series = labels("GET", "/download", 200)
    assert scrape(client).value("http_response_size_bytes_sum", **series) == len(FILE_BODY)
