"""The same endpoints on every adapter, the request list, and one driver per adapter.

Every adapter gets its own captured Telemetry (the same configuration) and an app with

    GET    /api/users/{id}     200, JSON
    GET    /api/fail           the view raises RuntimeError, nothing handles it -> 500
    GET    /api/missing-user   404 from the framework's own not-found
    POST   /api/orders         201, echoes the JSON body it reads
    GET    /no/such/route      no route matches -> 404
    DELETE /api/users/{id}     the route exists, the method does not -> 405
    GET    /api/unavailable    the view raises Unavailable, the app's own error handler
                               (Starlette/FastAPI exception handler, Flask errorhandler, Django
                               middleware ``process_exception``, try/except in the WSGI app)
                               answers 503

and receives :data:`CALLS`, each with the same headers on every adapter. What it recorded is
kept as a :class:`Recording` (plain data: the Telemetry is closed once the requests are done).
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry_web.testing import CapturedTelemetry, InMemoryLogSink, capture_telemetry

SERVICE = "conformance"
ENVIRONMENT = "test"
# With the opt-in body-size histograms: every adapter must count the same bytes.
CONFIG: dict[str, Any] = {"environment": ENVIRONMENT, "metrics": {"size_histograms": True}}
UNMATCHED = "<unmatched>"
BASE_URL = "http://testserver"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
QUERY = "token=secret&page=2"
REDACTED_QUERY = "token=REDACTED&page=2"
USER_AGENT = "conformance-suite/1.0"
ORDER = {"item": "book", "quantity": 2}
ORDER_BODY = json.dumps(ORDER).encode()
USER_ID = 7
FAILURE = "conformance failure"

REFERENCE = "asgi-starlette"
ADAPTER_NAMES = ("asgi-starlette", "asgi-fastapi", "django", "flask", "wsgi")

# Stands for the adapter's own template of the user route in Call.route.
USER_ROUTE = "{user route}"


class Unavailable(LookupError):
    """Raised by /api/unavailable; every app's own error handler answers it with a 503."""


@dataclass(frozen=True)
class Call:
    """One request of the list, and what every adapter must answer for it."""

    key: str
    method: str
    path: str
    status: int
    route: str | None  # USER_ROUTE, a template written alike in every framework, or unmatched
    parent_span_id: str
    body: bytes | None = None

    @property
    def target(self) -> str:
        return f"{self.path}?{QUERY}"

    @property
    def request_id(self) -> str:
        return f"conformance-{self.key}"

    @property
    def traceparent(self) -> str:
        return f"00-{TRACE_ID}-{self.parent_span_id}-01"

    def headers(self) -> dict[str, str]:
        headers = {
            "Host": "testserver",
            "User-Agent": USER_AGENT,
            "traceparent": self.traceparent,
            "X-Request-ID": self.request_id,
        }
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        return headers


CALLS = (
    Call("user", "GET", f"/api/users/{USER_ID}", 200, USER_ROUTE, "00f067aa0ba902b1"),
    Call("fail", "GET", "/api/fail", 500, "/api/fail", "00f067aa0ba902b2"),
    Call("missing", "GET", "/api/missing-user", 404, "/api/missing-user", "00f067aa0ba902b3"),
    Call("order", "POST", "/api/orders", 201, "/api/orders", "00f067aa0ba902b4", ORDER_BODY),
    Call("unmatched", "GET", "/no/such/route", 404, None, "00f067aa0ba902b5"),
    Call("not-allowed", "DELETE", f"/api/users/{USER_ID}", 405, USER_ROUTE, "00f067aa0ba902b6"),
    Call("unavailable", "GET", "/api/unavailable", 503, "/api/unavailable", "00f067aa0ba902b7"),
)
CALL_IDS = [call.key for call in CALLS]


@dataclass(frozen=True)
class Answer:
    """What the client received."""

    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


Driver = Callable[[Sequence[Call]], tuple[CapturedTelemetry, list[Answer]]]


@dataclass(frozen=True)
class Adapter:
    """One adapter under test: how to build and drive its app, and its route syntax."""

    name: str
    user_route: str  # the framework's template for /api/users/{id}
    drive: Driver

    def route(self, call: Call) -> str:
        """The ``route`` label ``call`` must be recorded with."""
        if call.route == USER_ROUTE:
            return self.user_route
        return call.route if call.route is not None else UNMATCHED


@dataclass(frozen=True)
class Recording:
    """Everything one adapter recorded for :data:`CALLS`."""

    adapter: Adapter
    answers: dict[str, Answer]  # by Call.key
    spans: list[ReadableSpan]
    logs: list[dict[str, Any]]
    metrics_text: str

    @property
    def name(self) -> str:
        return self.adapter.name

    def spans_for(self, call: Call) -> list[ReadableSpan]:
        """The spans whose parent is ``call``'s traceparent."""
        return [
            s
            for s in self.spans
            if s.parent is not None and f"{s.parent.span_id:016x}" == call.parent_span_id
        ]

    def span_for(self, call: Call) -> ReadableSpan:
        """The one span of ``call``."""
        found = self.spans_for(call)
        assert len(found) == 1, f"{self.name}: {len(found)} spans for {call.key}"
        return found[0]

    def request_lines(self) -> list[dict[str, Any]]:
        return [
            e
            for e in self.logs
            if e.get("event") == "request" and e.get("logger") == "telemetry_web.request"
        ]

    def line_for(self, call: Call) -> dict[str, Any]:
        """The one request log line of ``call`` (matched by its request id)."""
        found = [e for e in self.request_lines() if e.get("request_id") == call.request_id]
        assert len(found) == 1, f"{self.name}: {len(found)} request lines for {call.key}"
        return found[0]


@functools.cache
def recorded(name: str) -> Recording:
    """Drive adapter ``name`` once per test session and keep what it recorded."""
    adapter = ADAPTERS[name]
    captured, answers = adapter.drive(CALLS)
    try:
        spans = captured.spans()
        logs = captured.logs()
        text = captured.metrics_text()
    finally:
        captured.close()
    by_key = {call.key: answer for call, answer in zip(CALLS, answers, strict=True)}
    return Recording(adapter, by_key, spans, logs, text)


def _capture() -> CapturedTelemetry:
    return capture_telemetry(CONFIG, service=SERVICE)


def _answer(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> Answer:
    return Answer(status, {k.lower(): v for k, v in headers}, body)


# --- ASGI: Starlette and FastAPI ----------------------------------------------------------------


def _drive_asgi(app: Any, calls: Sequence[Call]) -> list[Answer]:
    async def go() -> list[Answer]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        answers = []
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            for call in calls:
                response = await client.request(
                    call.method, call.target, content=call.body, headers=call.headers()
                )
                answers.append(
                    _answer(response.status_code, response.headers.items(), response.content)
                )
        return answers

    return asyncio.run(go())


def drive_starlette(calls: Sequence[Call]) -> tuple[CapturedTelemetry, list[Answer]]:
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from telemetry_web import TelemetryMiddleware

    async def user(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["user_id"]})

    async def fail(request: Request) -> Response:
        raise RuntimeError(FAILURE)

    async def missing_user(request: Request) -> Response:
        raise HTTPException(404, "no such user")

    async def orders(request: Request) -> Response:
        return JSONResponse({"order": await request.json()}, status_code=201)

    async def unavailable(request: Request) -> Response:
        raise Unavailable("backend down")

    async def service_unavailable(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("try later", status_code=503)

    app = Starlette(
        routes=[
            Route("/api/users/{user_id:int}", user),
            Route("/api/fail", fail),
            Route("/api/missing-user", missing_user),
            Route("/api/orders", orders, methods=["POST"]),
            Route("/api/unavailable", unavailable),
        ],
        exception_handlers={Unavailable: service_unavailable},
    )
    captured = _capture()
    app.add_middleware(TelemetryMiddleware, telemetry=captured.telemetry)
    return captured, _drive_asgi(app, calls)


def drive_fastapi(calls: Sequence[Call]) -> tuple[CapturedTelemetry, list[Answer]]:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import PlainTextResponse

    from telemetry_web import TelemetryMiddleware

    app = FastAPI()

    @app.get("/api/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.get("/api/fail")
    async def fail() -> dict[str, str]:
        raise RuntimeError(FAILURE)

    @app.get("/api/missing-user")
    async def missing_user() -> dict[str, str]:
        raise HTTPException(404, "no such user")

    @app.post("/api/orders", status_code=201)
    async def orders(order: dict[str, Any]) -> dict[str, Any]:
        return {"order": order}

    @app.get("/api/unavailable")
    async def unavailable() -> dict[str, str]:
        raise Unavailable("backend down")

    @app.exception_handler(Unavailable)
    async def service_unavailable(request: Request, exc: Unavailable) -> PlainTextResponse:
        return PlainTextResponse("try later", status_code=503)

    captured = _capture()
    app.add_middleware(TelemetryMiddleware, telemetry=captured.telemetry)
    return captured, _drive_asgi(app, calls)


# --- Django ------------------------------------------------------------------------------------


def drive_django(calls: Sequence[Call]) -> tuple[CapturedTelemetry, list[Answer]]:
    from django.conf import settings
    from django.test import Client, override_settings

    from telemetry_web.django import set_telemetry

    # The project's own middleware goes after the telemetry middleware, as documented.
    middleware = [*settings.MIDDLEWARE, "tests.conformance.django_urls.ServiceUnavailable"]
    captured = _capture()
    previous = set_telemetry(captured.telemetry)
    answers = []
    try:
        with override_settings(ROOT_URLCONF="tests.conformance.django_urls", MIDDLEWARE=middleware):
            client = Client(raise_request_exception=False)
            for call in calls:
                headers = call.headers()
                content_type = headers.pop("Content-Type", "application/octet-stream")
                response = client.generic(
                    call.method,
                    call.target,
                    data=call.body or b"",
                    content_type=content_type,
                    headers=headers,
                )
                answers.append(
                    _answer(response.status_code, response.headers.items(), response.content)
                )
    finally:
        set_telemetry(previous)
    return captured, answers


# --- Flask ---------------------------------------------------------------------------------------


def drive_flask(calls: Sequence[Call]) -> tuple[CapturedTelemetry, list[Answer]]:
    from flask import Flask, abort, request

    from telemetry_web.flask import FlaskTelemetry

    app = Flask("conformance")
    app.config["TESTING"] = False  # Flask renders the 500 itself, as in production

    @app.get("/api/users/<int:user_id>")
    def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    @app.get("/api/fail")
    def fail() -> str:
        raise RuntimeError(FAILURE)

    @app.get("/api/missing-user")
    def missing_user() -> str:
        abort(404)

    @app.post("/api/orders")
    def orders() -> tuple[dict[str, Any], int]:
        return {"order": request.get_json()}, 201

    @app.get("/api/unavailable")
    def unavailable() -> str:
        raise Unavailable("backend down")

    @app.errorhandler(Unavailable)
    def service_unavailable(exc: Unavailable) -> tuple[str, int]:
        return "try later", 503

    # What capture_telemetry() builds, recorded through the Flask extension.
    spans, logs = InMemorySpanExporter(), InMemoryLogSink()
    telemetry = FlaskTelemetry(
        app,
        config={"logging": {"sinks": {"console": False}}, "store": {"enabled": False}, **CONFIG},
        service=SERVICE,
        span_exporters=[spans],
        log_sinks=[logs],
        use_env=False,
    )
    captured = CapturedTelemetry(telemetry.telemetry, spans, logs)
    client = app.test_client()
    answers = []
    for call in calls:
        response = client.open(
            call.target,
            method=call.method,
            headers=call.headers(),
            data=call.body,
            base_url=BASE_URL,
            buffered=True,  # iterate and close the body at once, as every WSGI server does
        )
        answers.append(_answer(response.status_code, response.headers.items(), response.get_data()))
    return captured, answers


# --- plain WSGI ----------------------------------------------------------------------------------

WsgiHandler = Callable[[dict[str, Any], Any, dict[str, str]], list[bytes]]


def _json(start_response: Any, status: str, payload: Any) -> list[bytes]:
    body = json.dumps(payload).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _wsgi_user(environ: dict[str, Any], start_response: Any, params: dict[str, str]) -> list[bytes]:
    return _json(start_response, "200 OK", {"id": int(params["user_id"])})


def _wsgi_fail(environ: dict[str, Any], start_response: Any, params: dict[str, str]) -> list[bytes]:
    raise RuntimeError(FAILURE)


def _wsgi_missing(
    environ: dict[str, Any], start_response: Any, params: dict[str, str]
) -> list[bytes]:
    return _json(start_response, "404 Not Found", {"error": "no such user"})


def _wsgi_orders(
    environ: dict[str, Any], start_response: Any, params: dict[str, str]
) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    order = json.loads(environ["wsgi.input"].read(length))
    return _json(start_response, "201 Created", {"order": order})


def _wsgi_unavailable(
    environ: dict[str, Any], start_response: Any, params: dict[str, str]
) -> list[bytes]:
    raise Unavailable("backend down")


WSGI_ROUTES: tuple[tuple[str, re.Pattern[str], str, WsgiHandler], ...] = (
    ("GET", re.compile(r"/api/users/(?P<user_id>[0-9]+)"), "/api/users/{user_id}", _wsgi_user),
    ("GET", re.compile(r"/api/fail"), "/api/fail", _wsgi_fail),
    ("GET", re.compile(r"/api/missing-user"), "/api/missing-user", _wsgi_missing),
    ("POST", re.compile(r"/api/orders"), "/api/orders", _wsgi_orders),
    ("GET", re.compile(r"/api/unavailable"), "/api/unavailable", _wsgi_unavailable),
)


def _wsgi_match(path: str) -> tuple[str, str, WsgiHandler, dict[str, str]] | None:
    for method, pattern, template, handler in WSGI_ROUTES:
        match = pattern.fullmatch(path)
        if match is not None:
            return method, template, handler, match.groupdict()
    return None


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A framework-less WSGI app routing :data:`WSGI_ROUTES`, with its own error handler."""
    found = _wsgi_match(environ.get("PATH_INFO", ""))
    if found is None:
        return _json(start_response, "404 Not Found", {"error": "not found"})
    method, _template, handler, params = found
    if environ.get("REQUEST_METHOD") != method:
        return _json(start_response, "405 Method Not Allowed", {"error": "method not allowed"})
    try:
        return handler(environ, start_response, params)
    except Unavailable:
        return _json(start_response, "503 Service Unavailable", {"error": "try later"})


def wsgi_route_resolver(environ: dict[str, Any]) -> str | None:
    """The ``route_resolver`` given to the middleware: the template the path routes to (by
    path, whatever the method, as Starlette's and Django's resolvers do)."""
    found = _wsgi_match(environ.get("PATH_INFO", ""))
    return found[1] if found is not None else None


def like_a_wsgi_server(app: Any) -> Any:
    """What gunicorn or waitress do when an exception escapes the app before the response
    started: answer a plain 500 themselves (werkzeug's test client would re-raise instead)."""

    def server(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            return app(environ, start_response)  # type: ignore[no-any-return]
        except Exception:
            body = b"Internal Server Error"
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]

    return server


def drive_wsgi(calls: Sequence[Call]) -> tuple[CapturedTelemetry, list[Answer]]:
    from werkzeug.test import Client

    from telemetry_web.wsgi import TelemetryWSGIMiddleware

    captured = _capture()
    app = TelemetryWSGIMiddleware(
        wsgi_app, telemetry=captured.telemetry, route_resolver=wsgi_route_resolver
    )
    client = Client(like_a_wsgi_server(app))
    answers = []
    for call in calls:
        response = client.open(
            call.target,
            method=call.method,
            headers=call.headers(),
            data=call.body,
            base_url=BASE_URL,
            # A WSGI server always sets REMOTE_ADDR (werkzeug's bare client does not; Flask's
            # and Django's test clients set 127.0.0.1, as httpx's ASGI transport does).
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
            buffered=True,  # iterate and close the body at once, as every WSGI server does
        )
        answers.append(_answer(response.status_code, response.headers.items(), response.get_data()))
    return captured, answers


ADAPTERS: dict[str, Adapter] = {
    "asgi-starlette": Adapter("asgi-starlette", "/api/users/{user_id:int}", drive_starlette),
    "asgi-fastapi": Adapter("asgi-fastapi", "/api/users/{user_id}", drive_fastapi),
    "django": Adapter("django", "/api/users/<int:user_id>", drive_django),
    "flask": Adapter("flask", "/api/users/<int:user_id>", drive_flask),
    "wsgi": Adapter("wsgi", "/api/users/{user_id}", drive_wsgi),
}
assert tuple(ADAPTERS) == ADAPTER_NAMES
