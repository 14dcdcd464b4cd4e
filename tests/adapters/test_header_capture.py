"""Header capture (``http.capture_headers``, the OpenTelemetry variables) in every adapter:
``http.request.header.<name>``/``http.response.header.<name>`` lists, credentials redacted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from flask import Flask
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.django import DjangoTelemetryMiddleware as DjangoMiddleware
from telemetry_web.flask import FlaskTelemetry
from telemetry_web.testing import CapturedTelemetry, InMemoryLogSink, capture_telemetry
from telemetry_web.wsgi import TelemetryWSGIMiddleware

from .django import conftest as _django_settings  # noqa: F401  (settings.configure, once)

SECRET = "s3cr3t-header-value"
REQUEST_HEADERS = {
    "X-Tenant": "acme",
    "Authorization": f"Bearer {SECRET}",
    "Cookie": f"session={SECRET}",
    "Proxy-Authorization": f"Basic {SECRET}",
    "X-Api-Key": SECRET,
    "X-Internal": SECRET,  # named in http.redact_headers
    "X-Auth-Token": SECRET,  # a credential by the name rule
    "X-Not-Captured": "ignored",
}
RESPONSE_HEADERS = {"X-Served-By": "node-7", "Set-Cookie": f"sid={SECRET}; HttpOnly"}
CAPTURE = {
    "http": {
        "capture_headers": {
            "request": ["X-Tenant", "authorization", "Cookie", "Proxy-Authorization",
                        "X-Api-Key", "X-Internal", "X-Auth-Token", "X-Absent"],
            "response": ["X-Served-By", "Set-Cookie", "X-Absent"],
        },
        "redact_headers": ["X-Internal"],
    }
}  # fmt: skip
EXPECTED = {
    "http.request.header.x-tenant": ("acme",),
    "http.request.header.authorization": ("REDACTED",),
    "http.request.header.cookie": ("REDACTED",),
    "http.request.header.proxy-authorization": ("REDACTED",),
    "http.request.header.x-api-key": ("REDACTED",),
    "http.request.header.x-internal": ("REDACTED",),
    "http.request.header.x-auth-token": ("REDACTED",),
    "http.response.header.x-served-by": ("node-7",),
    "http.response.header.set-cookie": ("REDACTED",),
}


# --- one request through each adapter --------------------------------------------------------


def _asgi(tel: Telemetry) -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi", headers=RESPONSE_HEADERS)

    app = TelemetryMiddleware(Starlette(routes=[Route("/hello", hello)]), telemetry=tel)

    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.get("/hello", headers=REQUEST_HEADERS)).status_code == 200

    asyncio.run(go())


def _wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), *RESPONSE_HEADERS.items()])
    return [b"hi"]


def _wsgi(tel: Telemetry) -> None:
    client = Client(TelemetryWSGIMiddleware(_wsgi_app, telemetry=tel), use_cookies=False)
    assert client.get("/hello", headers=REQUEST_HEADERS, buffered=True).status_code == 200


def _flask(tel: Telemetry) -> None:
    app = FLASK_APPS[id(tel)]
    assert (
        app.test_client(use_cookies=False)
        .get("/hello", headers=REQUEST_HEADERS, buffered=True)
        .status_code
        == 200
    )


def _django(tel: Telemetry) -> None:
    def view(request: HttpRequest) -> HttpResponse:
        response = HttpResponse(b"hi")
        for name, value in RESPONSE_HEADERS.items():
            response[name] = value
        return response

    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in REQUEST_HEADERS.items()}
    response = DjangoMiddleware(view, telemetry=tel)(RequestFactory().get("/hello", **headers))
    assert response.status_code == 200


ADAPTERS = {"asgi": _asgi, "wsgi": _wsgi, "flask": _flask, "django": _django}
FLASK_APPS: dict[int, Flask] = {}


def _flask_captured(config: dict[str, Any]) -> CapturedTelemetry:
    """The Flask extension (``Telemetry(app, config)``) recording into memory."""
    app = Flask(__name__)

    @app.get("/hello")
    def hello() -> tuple[str, int, dict[str, str]]:
        return "hi", 200, RESPONSE_HEADERS

    spans, logs = InMemorySpanExporter(), InMemoryLogSink()
    config = {"logging": {"sinks": {"console": False}}, **config}
    extension = FlaskTelemetry(
        app, config=config, span_exporters=[spans], log_sinks=[logs], use_env=False
    )
    FLASK_APPS[id(extension.telemetry)] = app
    return CapturedTelemetry(extension.telemetry, spans, logs)


def _header_attributes(captured: CapturedTelemetry) -> dict[str, Any]:
    (span,) = captured.spans()
    return {
        k: v
        for k, v in (span.attributes or {}).items()
        if k.startswith(("http.request.header.", "http.response.header."))
        and k != "http.request.header.x-request-id"
    }


#: ``make_captured(config, adapter="asgi")``
MakeCaptured = Callable[..., CapturedTelemetry]


@pytest.fixture
def make_captured() -> Iterator[MakeCaptured]:
    """``make_captured(config, adapter)``: a captured Telemetry for that adapter, closed after."""
    created: list[CapturedTelemetry] = []

    def factory(config: dict[str, Any], adapter: str = "asgi") -> CapturedTelemetry:
        captured = _flask_captured(config) if adapter == "flask" else capture_telemetry(config)
        created.append(captured)
        return captured

    yield factory
    for captured in created:
        FLASK_APPS.pop(id(captured.telemetry), None)
        captured.close()


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_captured_headers_are_lists_and_credentials_redacted(
    adapter: str, make_captured: MakeCaptured
) -> None:
    """Each adapter records the configured request and response headers as one-string lists;
    credentials, configured names and credential-like names are REDACTED, absent ones left out."""
    captured = make_captured(CAPTURE, adapter)
    ADAPTERS[adapter](captured.telemetry)
    assert _header_attributes(captured) == EXPECTED
    assert SECRET not in repr(captured.spans()[0].to_json())
    assert all(SECRET not in repr(event) for event in captured.logs())


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_nothing_captured_by_default(adapter: str, make_captured: MakeCaptured) -> None:
    """Without configuration only the request id header is on the span, as before."""
    captured = make_captured({}, adapter)
    ADAPTERS[adapter](captured.telemetry)
    (span,) = captured.spans()
    assert _header_attributes(captured) == {}
    assert "http.request.header.x-request-id" in (span.attributes or {})


def test_lifecycle_decodes_only_the_wanted_headers(make_captured: MakeCaptured) -> None:
    """The captured request headers join the lifecycle's wanted set (decided once); response
    names are handed to adapters only when configured."""
    plain = make_captured({}).telemetry.lifecycle
    assert plain.response_header_names == frozenset()
    life = make_captured(CAPTURE).telemetry.lifecycle
    assert {"x-tenant", "authorization", "x-absent"} <= life.wanted_headers
    assert "x-not-captured" not in life.wanted_headers
    assert life.response_header_names == {"x-served-by", "set-cookie", "x-absent"}


def test_otel_variables_configure_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenTelemetry variables (comma-separated names) set the request and response lists;
    a name that cannot be a header is left out."""
    monkeypatch.setenv(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "X-Tenant, Cookie,bad name"
    )
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "X-Served-By")
    captured = capture_telemetry(use_env=True)
    try:
        capture = captured.telemetry.settings.http.capture_headers
        assert capture.request == ("X-Tenant", "Cookie")
        assert capture.response == ("X-Served-By",)
        _asgi(captured.telemetry)
        attributes = _header_attributes(captured)
        assert attributes == {
            "http.request.header.x-tenant": ("acme",),
            "http.request.header.cookie": ("REDACTED",),
            "http.response.header.x-served-by": ("node-7",),
        }
    finally:
        captured.close()


def test_repeated_request_header_lines_are_joined(make_captured: MakeCaptured) -> None:
    """A captured header sent on two lines is one comma-joined string under ASGI, as WSGI
    servers join it for WSGI, Flask and Django."""
    captured = make_captured({"http": {"capture_headers": {"request": ["X-Tag"]}}})

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = TelemetryMiddleware(
        Starlette(routes=[Route("/hello", hello)]), telemetry=captured.telemetry
    )

    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await c.get("/hello", headers=[("X-Tag", "a"), ("X-Tag", "b")])

    asyncio.run(go())
    assert _header_attributes(captured) == {"http.request.header.x-tag": ("a,b",)}
