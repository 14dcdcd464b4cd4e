"""TelemetryWSGIMiddleware around a raw WSGI app, driven by werkzeug's test client and raw calls."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from gunicorn.http.wsgi import FileWrapper as GunicornFileWrapper
from opentelemetry.trace import SpanKind, StatusCode
from werkzeug.test import Client

from telemetry_web.testing import CapturedTelemetry
from telemetry_web.wsgi import TelemetryWSGIMiddleware

from .._metrics import Scrape
from ._wsgi_support import (
    BASE_LABELS,
    ENVIRONMENT,
    FILE_BODY,
    SERVICE,
    STREAM_CHUNKS,
    STREAM_GAP,
    UNMATCHED,
    RawApp,
    call_wsgi,
    capture,
    labels,
    make_environ,
    request_lines,
)

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


@pytest.fixture
def captured() -> Iterator[CapturedTelemetry]:
    """A Telemetry recording into memory, shut down after the test."""
    capture_ = capture()
    yield capture_
    capture_.close()


def _ignore_start_response(
    status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
) -> Callable[[bytes], object]:
    """A server's start_response whose write() callable is never used."""
    return lambda data: None


@pytest.fixture
def app() -> RawApp:
    return RawApp()


def wrap(captured: CapturedTelemetry, app: Any, **kwargs: Any) -> TelemetryWSGIMiddleware:
    kwargs.setdefault("route_resolver", RawApp.resolve)
    return TelemetryWSGIMiddleware(app, telemetry=captured.telemetry, **kwargs)


def client(captured: CapturedTelemetry, app: Any, **kwargs: Any) -> Client:
    return Client(wrap(captured, app, **kwargs))


def scrape(test_client: Client) -> Scrape:
    response = test_client.get("/metrics", buffered=True)
    assert response.status_code == 200, response.text
    return Scrape.parse(response.text)


# --- metrics, span, log line ---------------------------------------------------------------------


def test_one_request_gives_metrics_span_and_log_line(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """A request is counted under its route template, gets one SERVER span and one log line."""
    c = client(captured, app)
    response = c.get(
        "/users/42",
        headers={"User-Agent": "wsgi-tests/1.0"},
        environ_overrides={"REMOTE_ADDR": "10.1.2.3"},
        buffered=True,
    )
    assert response.status_code == 200
    assert response.data == b"user:42"
    metrics = scrape(c)
    series = labels("GET", "/users/{id}", 200)
    assert metrics.value("http_requests_total", **series) == 1
    assert metrics.value("http_request_duration_seconds_count", **series) == 1
    assert metrics.value("http_response_size_bytes_sum", **series) == len(b"user:42")
    assert metrics.value("http_request_size_bytes_sum", **series) == 0
    assert metrics.label_sets("http_requests_total") == [series]
    in_progress = {**BASE_LABELS, "method": "GET", "route": "/users/{id}"}
    assert metrics.value("http_requests_in_progress", **in_progress) == 0

    (span,) = captured.spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /users/{id}"
    request_id = response.headers["X-Request-ID"]
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "http.route": "/users/{id}",
        "url.path": "/users/42",
        "url.scheme": "http",
        "server.address": "localhost",
        "client.address": "10.1.2.3",
        "user_agent.original": "wsgi-tests/1.0",
        "network.protocol.version": "1.1",
        "http.request.header.x-request-id": request_id,
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET

    (line,) = request_lines(captured.logs())
    expected = {
        "level": "info", "service": SERVICE, "environment": ENVIRONMENT,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "method": "GET", "route": "/users/{id}", "path": "/users/42", "status": 200,
        "client": "10.1.2.3", "user_agent": "wsgi-tests/1.0", "request_id": request_id,
    }  # fmt: skip
    assert {k: line.get(k) for k in expected} == expected
    assert line["duration_ms"] >= 0


def test_query_is_redacted_in_span_and_log(captured: CapturedTelemetry, app: RawApp) -> None:
    """QUERY_STRING reaches url.query and the log line with secret values redacted."""
    c = client(captured, app)
    c.get("/users/1?token=abc&page=2", buffered=True)
    (span,) = captured.spans()
    assert (span.attributes or {})["url.query"] == "token=REDACTED&page=2"
    (line,) = request_lines(captured.logs())
    assert line["query"] == "token=REDACTED&page=2"


def test_no_resolver_labels_every_request_unmatched(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """Without a route_resolver the route is <unmatched> and the span is named by method only."""
    c = client(captured, app, route_resolver=None)
    c.get("/users/1", buffered=True)
    c.get("/users/2", buffered=True)
    assert scrape(c).value("http_requests_total", **labels("GET", UNMATCHED, 200)) == 2
    assert [s.name for s in captured.spans()] == ["GET", "GET"]
    assert all("http.route" not in (s.attributes or {}) for s in captured.spans())


def test_route_resolver_gets_the_environ_and_failures_are_unmatched(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """The resolver sees the request's environ; one that raises leaves the request <unmatched>."""
    seen: list[str] = []

    def resolver(environ: dict[str, Any]) -> str | None:
        seen.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/users/7":
            raise LookupError("resolver bug")
        return "/users/<id>"

    c = client(captured, app, route_resolver=resolver)
    assert c.get("/users/1", buffered=True).status_code == 200
    assert c.get("/users/7", buffered=True).status_code == 200
    assert seen == ["/users/1", "/users/7"]
    metrics = scrape(c)
    assert metrics.value("http_requests_total", **labels("GET", "/users/<id>", 200)) == 1
    assert metrics.value("http_requests_total", **labels("GET", UNMATCHED, 200)) == 1


def test_nested_middleware_records_once_with_the_inner_route(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """Wrapped twice, a request is recorded once; the inner copy's resolver names the route."""
    inner = wrap(captured, app)
    outer = TelemetryWSGIMiddleware(inner, telemetry=captured.telemetry)
    response = Client(outer).get("/users/5", buffered=True)
    assert response.status_code == 200
    assert len(response.headers.getlist("X-Request-ID")) == 1
    (span,) = captured.spans()
    assert span.name == "GET /users/{id}"
    assert (
        captured.sample("http_requests_total", method="GET", route="/users/{id}", status="200") == 1
    )


# --- request ids ---------------------------------------------------------------------------------


def test_valid_incoming_request_id_is_kept(captured: CapturedTelemetry, app: RawApp) -> None:
    """A valid incoming X-Request-ID is echoed and lands on the span and the log line."""
    response = client(captured, app).get(
        "/users/1", headers={"X-Request-ID": "req-1.2:3/4+5=6@7"}, buffered=True
    )
    assert response.headers["X-Request-ID"] == "req-1.2:3/4+5=6@7"
    (span,) = captured.spans()
    assert (span.attributes or {})["http.request.header.x-request-id"] == "req-1.2:3/4+5=6@7"
    assert request_lines(captured.logs())[0]["request_id"] == "req-1.2:3/4+5=6@7"


@pytest.mark.parametrize(
    "value",
    ["has spaces", "x" * 129, "semi;colon", "caf\u00c3\u00a9", "\u00ff\u00fe-not-utf8"],
    ids=["spaces", "too long", "forbidden character", "utf-8 non-ascii", "invalid utf-8"],
)
def test_invalid_incoming_request_id_is_replaced(
    captured: CapturedTelemetry, app: RawApp, value: str
) -> None:
    """An invalid X-Request-ID (raw environ text) is replaced by a generated 32-hex id."""
    response = client(captured, app).get(
        "/users/1", environ_overrides={"HTTP_X_REQUEST_ID": value}, buffered=True
    )
    generated = response.headers["X-Request-ID"]
    assert generated != value
    assert len(generated) == 32
    int(generated, 16)
    assert request_lines(captured.logs())[0]["request_id"] == generated


def test_request_ids_differ_and_are_on_error_responses(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """Every response carries its own id: 200, 404 and a 500 the app reports with exc_info."""
    c = client(captured, app)
    ids = {c.get(path, buffered=True).headers["X-Request-ID"] for path in ("/users/1", "/nope")}
    result = call_wsgi(wrap(captured, app), make_environ("/exc-info"))
    assert result.code == 500
    ids.add(result.header("X-Request-ID") or "")
    assert len(ids) == 3
    assert ids == {line["request_id"] for line in request_lines(captured.logs())}


def test_app_chosen_request_id_header_is_not_duplicated(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """A response that already has the request id header keeps it and gets no second one."""
    response = client(captured, app).get("/teapot", buffered=True)
    assert response.status_code == 418
    assert response.headers.getlist("X-Request-ID") == ["app-chosen"]


def test_custom_request_id_header(app: RawApp) -> None:
    """``http.request_id_header`` names the header read and echoed, in its configured case."""
    captured = capture(http={"request_id_header": "X-Correlation-ID"})
    try:
        result = call_wsgi(
            wrap(captured, app), make_environ("/users/1", headers={"X-Correlation-ID": "corr-9"})
        )
        assert ("X-Correlation-ID", "corr-9") in result.headers
        assert result.header("X-Request-ID") is None
        assert request_lines(captured.logs())[0]["request_id"] == "corr-9"
    finally:
        captured.close()


# --- built-in endpoints and exclusions -----------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/metrics", "text/plain"), ("/health", "application/json"), ("/ready", "application/json")],
)
def test_builtin_endpoints_answer_without_the_app(
    captured: CapturedTelemetry, app: RawApp, method: str, path: str, content_type: str
) -> None:
    """/metrics, /health and /ready answer GET and HEAD themselves, and are never recorded."""
    response = client(captured, app).open(path, method=method, buffered=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(content_type)
    assert int(response.headers["Content-Length"]) > 0
    assert (response.data == b"") is (method == "HEAD")
    assert app.calls == 0
    assert captured.spans() == []
    assert request_lines(captured.logs()) == []
    assert "http_requests_total{" not in captured.metrics_text()


def test_metrics_bearer_token_and_openmetrics(app: RawApp) -> None:
    """The Authorization and Accept headers reach the /metrics renderer from the environ."""
    captured = capture(metrics={"collectors": {"prometheus": {"bearer_token": "s3cret"}}})
    try:
        c = client(captured, app)
        assert c.get("/metrics", buffered=True).status_code == 401
        response = c.get(
            "/metrics",
            headers={"Authorization": "Bearer s3cret", "Accept": "application/openmetrics-text"},
            buffered=True,
        )
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    finally:
        captured.close()


def test_other_methods_on_builtin_paths_and_excluded_paths_pass_through(app: RawApp) -> None:
    """POST /health reaches the app unrecorded, as does any request to an excluded path."""
    captured = capture(http={"exclude_paths": ["/users/*"]})
    try:
        c = client(captured, app)
        post = c.post("/health", buffered=True)
        assert (post.status_code, post.data) == (404, b"not found: POST")
        excluded = c.get("/users/3", buffered=True)
        assert excluded.status_code == 200
        assert "X-Request-ID" not in excluded.headers
        assert app.calls == 2
        assert captured.spans() == []
        assert request_lines(captured.logs()) == []
    finally:
        captured.close()


def test_builtins_match_path_info_under_a_script_name(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """Mounted under SCRIPT_NAME, /svc/metrics is the built-in; spans carry the full path."""
    c = client(captured, app)
    assert c.get("/metrics", base_url="http://localhost/svc/", buffered=True).status_code == 200
    response = c.get("/users/8", base_url="http://localhost/svc/", buffered=True)
    assert response.status_code == 200
    assert app.calls == 1
    (span,) = captured.spans()
    assert span.name == "GET /users/{id}"
    assert (span.attributes or {})["url.path"] == "/svc/users/8"


# --- streaming and close() -----------------------------------------------------------------------


def test_streamed_body_is_timed_to_its_end_and_closed_once(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """Duration covers the whole streamed body; the app iterable's close() runs exactly once."""
    c = client(captured, app)
    response = c.get("/stream", buffered=True)
    assert response.data == b"".join(STREAM_CHUNKS)
    minimum = STREAM_GAP * (len(STREAM_CHUNKS) - 1)
    (body,) = app.bodies
    assert body.closed == 1
    (span,) = captured.spans()
    assert span.end_time is not None
    assert span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 >= minimum
    (line,) = request_lines(captured.logs())
    assert line["duration_ms"] >= minimum * 1000
    series = labels("GET", "/stream", 200)
    metrics = scrape(c)
    assert metrics.value("http_request_duration_seconds_sum", **series) >= minimum
    assert metrics.value("http_response_size_bytes_sum", **series) == len(b"".join(STREAM_CHUNKS))


def test_closing_twice_closes_the_app_iterable_once(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """A second close() of the returned iterable does nothing: one close, one span, one line."""
    result = call_wsgi(wrap(captured, app), make_environ("/stream"))
    result.returned.close()
    assert app.bodies[0].closed == 1
    assert len(captured.spans()) == 1
    assert len(request_lines(captured.logs())) == 1


def test_in_progress_gauge_counts_an_open_response(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """While the body is being iterated the in-progress gauge is 1 under the route template."""
    wrapped = wrap(captured, app)
    returned = wrapped(make_environ("/stream"), _ignore_start_response)
    try:
        assert captured.sample("http_requests_in_progress", method="GET", route="/stream") == 1
    finally:
        returned.close()  # type: ignore[attr-defined]
    assert captured.sample("http_requests_in_progress", method="GET", route="/stream") == 0


@pytest.mark.parametrize(
    ("path", "status", "body_chunks_sent"),
    [("/fail-mid-stream", 200, 2), ("/fail-first-chunk", 500, 0)],
)
def test_exception_while_iterating_is_recorded_reraised_and_closed_once(
    captured: CapturedTelemetry, app: RawApp, path: str, status: int, body_chunks_sent: int
) -> None:
    """An exception from the body is re-raised, recorded (500 unless bytes already went out),
    and the app iterable is still closed exactly once."""
    with pytest.raises(RuntimeError, match="mid-stream failure"):
        client(captured, app).get(path, buffered=True)
    (body,) = app.bodies
    assert body.closed == 1
    (span,) = captured.spans()
    assert (span.attributes or {})["http.response.status_code"] == status
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert span.status.status_code is StatusCode.ERROR
    (line,) = request_lines(captured.logs())
    assert (line["status"], line["level"]) == (status, "error")
    assert line["exception"]["message"] == "mid-stream failure"
    sent = sum(len(c) for c in STREAM_CHUNKS[:body_chunks_sent])
    series = {"method": "GET", "route": path, "status": str(status)}
    assert captured.sample("http_response_size_bytes_sum", **series) == sent


# --- exceptions ----------------------------------------------------------------------------------


def test_exception_from_the_app_is_recorded_and_reraised(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """An exception raised by the app call is a 500 with the exception on span and log line."""
    c = client(captured, app)
    with pytest.raises(RuntimeError, match="kaboom"):
        c.get("/boom", buffered=True)
    (span,) = captured.spans()
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 500
    assert attributes["error.type"] == "RuntimeError"
    assert span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {})["exception.message"] == "kaboom"
    (line,) = request_lines(captured.logs())
    assert (line["status"], line["level"], line["route"]) == (500, "error", "/boom")
    assert line["exception"]["type"] == "RuntimeError"
    assert scrape(c).value("http_requests_total", **labels("GET", "/boom", 500)) == 1


def test_exc_info_given_to_start_response_is_passed_on_and_recorded(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """exc_info reaches the server's start_response and becomes the request's exception."""
    result = call_wsgi(wrap(captured, app), make_environ("/exc-info"))
    assert result.code == 500
    assert isinstance(result.exc_info[1], ValueError)
    assert result.body == b"sorry"
    (span,) = captured.spans()
    assert (span.attributes or {})["error.type"] == "ValueError"
    (line,) = request_lines(captured.logs())
    assert line["exception"]["message"] == "handled by the app"


def test_exc_info_after_headers_went_out_propagates(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """When the server re-raises exc_info (headers already sent) it goes through and is recorded."""
    with pytest.raises(ValueError, match="too late"):
        call_wsgi(wrap(captured, app), make_environ("/late-exc-info"))
    (span,) = captured.spans()
    assert (span.attributes or {})["http.response.status_code"] == 200
    assert (span.attributes or {})["error.type"] == "ValueError"


# --- headers, paths and sizes --------------------------------------------------------------------


def test_invalid_utf8_header_bytes_are_ignored(captured: CapturedTelemetry, app: RawApp) -> None:
    """Header values that are not UTF-8 count as absent; a malformed traceparent starts a trace."""
    bad = b"00-\xff\xfe" + TRACE_ID[4:].encode() + f"-{PARENT_ID}-01".encode()
    response = client(captured, app).get(
        "/users/1",
        environ_overrides={
            "HTTP_USER_AGENT": b"agent-\xff\xfe".decode("latin-1"),
            "HTTP_TRACEPARENT": bad.decode("latin-1"),
        },
        buffered=True,
    )
    assert response.status_code == 200
    (span,) = captured.spans()
    assert "user_agent.original" not in (span.attributes or {})
    assert span.parent is None
    assert request_lines(captured.logs())[0]["user_agent"] is None


def test_utf8_headers_and_traceparent_are_read(captured: CapturedTelemetry, app: RawApp) -> None:
    """UTF-8 header bytes (latin-1 text in the environ) are recovered; traceparent is continued."""
    response = client(captured, app).get(
        "/users/1",
        environ_overrides={"HTTP_USER_AGENT": "agent-café".encode().decode("latin-1")},
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
        buffered=True,
    )
    assert response.status_code == 200
    (span,) = captured.spans()
    assert (span.attributes or {})["user_agent.original"] == "agent-café"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID


def test_utf8_path_is_recovered(captured: CapturedTelemetry, app: RawApp) -> None:
    """PATH_INFO holds latin-1 decoded bytes; spans and logs get the UTF-8 path back."""
    response = client(captured, app).get("/users/café", buffered=True)
    assert response.data == "user:café".encode()
    (span,) = captured.spans()
    assert (span.attributes or {})["url.path"] == "/users/café"
    assert request_lines(captured.logs())[0]["path"] == "/users/café"


def test_request_and_response_sizes(captured: CapturedTelemetry, app: RawApp) -> None:
    """Request size is CONTENT_LENGTH; response size counts returned chunks and write() calls."""
    c = client(captured, app)
    assert c.post("/echo", data=b"hello world", buffered=True).data == b"echo:hello world"
    with c.get("/write") as written:  # buffered=True would drop write() data (werkzeug)
        assert written.data == b"written-returned"
    metrics = scrape(c)
    echo = labels("POST", "/echo", 200)
    assert metrics.value("http_request_size_bytes_sum", **echo) == 11
    assert metrics.value("http_response_size_bytes_sum", **echo) == 16
    write = labels("GET", UNMATCHED, 200)
    assert metrics.value("http_response_size_bytes_sum", **write) == len(b"written-returned")


@pytest.mark.parametrize(
    "chunked",
    [
        pytest.param({"wsgi.input_terminated": True}, id="dechunked-by-the-server"),
        pytest.param({"HTTP_TRANSFER_ENCODING": "chunked"}, id="transfer-encoding-header"),
    ],
)
def test_body_without_content_length_is_counted_as_read(
    captured: CapturedTelemetry, app: RawApp, chunked: dict[str, Any]
) -> None:
    """A chunked body (no CONTENT_LENGTH) is sized by the bytes the app reads from wsgi.input."""
    environ = make_environ("/echo", method="POST")
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(b"x" * 1000)
    environ.update(chunked)
    result = call_wsgi(wrap(captured, app), environ)
    assert result.body == b"echo:" + b"x" * 1000
    series = {"method": "POST", "route": "/echo", "status": "200"}
    assert captured.sample("http_request_size_bytes_sum", **series) == 1000


def test_input_of_a_request_without_body_is_passed_through(captured: CapturedTelemetry) -> None:
    """No Content-Length and no Transfer-Encoding is no body (RFC 9112 6.3): the app gets the
    server's own wsgi.input, and a declared length is the size without counting reads."""
    seen: list[Any] = []

    def raw(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["wsgi.input"].read()]

    stream = io.BytesIO(b"")
    environ = make_environ("/plain")
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = stream
    assert call_wsgi(wrap(captured, raw), environ).body == b""
    posted = make_environ("/echo", method="POST", data=b"0123456789")
    assert call_wsgi(wrap(captured, raw), posted).body == b"0123456789"
    assert seen[0] is stream
    assert seen[1] is posted["wsgi.input"]
    assert (
        captured.sample("http_request_size_bytes_sum", method="POST", route="/echo", status="200")
        == 10
    )


def test_counting_input_supports_werkzeug_limited_stream(captured: CapturedTelemetry) -> None:
    """werkzeug's request parsing (readinto through LimitedStream) works on the counted input
    of a chunked form post."""
    from werkzeug.wrappers import Request, Response

    @Request.application
    def form_app(request: Request) -> Response:
        return Response(f"{request.form['a']}|{request.get_data()!r}")

    environ = make_environ(
        "/echo", method="POST", data=b"a=1", content_type="application/x-www-form-urlencoded"
    )
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input_terminated"] = True
    response = call_wsgi(wrap(captured, form_app), environ)
    assert response.body == b"1|b''"
    assert captured.sample(
        "http_request_size_bytes_sum", method="POST", route="/echo", status="200"
    ) == len(b"a=1")


# --- file wrappers -------------------------------------------------------------------------------


class SlottedFileWrapper:
    """A server file wrapper whose close cannot be replaced (forces the iterable proxy)."""

    __slots__ = ("filelike",)

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.filelike.read(8192), b"")

    def close(self) -> None:
        self.filelike.close()


@pytest.mark.parametrize("path", ["/file", "/send-file"])
def test_server_file_wrapper_object_is_returned_as_is(
    captured: CapturedTelemetry, app: RawApp, path: str
) -> None:
    """The server's own file wrapper comes back unchanged (sendfile stays possible); closing it
    closes the file and finishes the request with the file's size."""
    environ = make_environ(path)
    environ["wsgi.file_wrapper"] = GunicornFileWrapper
    result = call_wsgi(wrap(captured, app), environ)
    assert type(result.returned) is GunicornFileWrapper
    assert result.body == FILE_BODY
    assert result.returned.filelike.closed
    assert len(captured.spans()) == 1
    (line,) = request_lines(captured.logs())
    assert line["status"] == 200
    assert captured.sample(
        "http_response_size_bytes_sum", method="GET", route=path, status="200"
    ) == len(FILE_BODY)


def test_file_wrapper_whose_close_cannot_be_hooked_is_proxied(
    captured: CapturedTelemetry, app: RawApp
) -> None:
    """A wrapper with a fixed close() is served through the counting proxy and still works."""
    environ = make_environ("/file")
    environ["wsgi.file_wrapper"] = SlottedFileWrapper
    result = call_wsgi(wrap(captured, app), environ)
    assert not isinstance(result.returned, SlottedFileWrapper)
    assert result.body == FILE_BODY
    assert captured.sample(
        "http_response_size_bytes_sum", method="GET", route="/file", status="200"
    ) == len(FILE_BODY)


# --- packaging -----------------------------------------------------------------------------------


def test_wsgi_middleware_needs_no_framework() -> None:
    """telemetry_web.wsgi imports and serves a request with Flask and werkzeug hidden."""
    code = textwrap.dedent(
        """
        import sys
        for name in ("flask", "werkzeug", "starlette", "django"):
            sys.modules[name] = None
        from telemetry_web.testing import capture_telemetry
        from telemetry_web.wsgi import TelemetryWSGIMiddleware

        def app(environ, start_response):
            start_response("204 No Content", [])
            return []

        captured = capture_telemetry({"metrics": {"size_histograms": True}})
        wrapped = TelemetryWSGIMiddleware(app, telemetry=captured.telemetry)
        seen = []
        body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/x", "wsgi.url_scheme": "http"},
                       lambda status, headers, exc_info=None: seen.append((status, headers)))
        list(body); body.close()
        assert seen[0][0] == "204 No Content" and seen[0][1][0][0] == "X-Request-ID", seen
        assert captured.sample("http_requests_total", method="GET", route="<unmatched>",
                               status="204") == 1
        captured.close()
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
