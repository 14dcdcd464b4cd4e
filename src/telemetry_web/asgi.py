"""Pure ASGI middleware for Starlette, FastAPI and any ASGI application.

    app.add_middleware(TelemetryMiddleware, telemetry=telemetry)   # Starlette / FastAPI
    app = TelemetryMiddleware(app, telemetry=telemetry)            # any ASGI callable

Each HTTP request gets one server span, its RED metrics and one request log line; ``/metrics``,
``/health`` and ``/ready`` are answered here without touching the app's router.

Added with ``add_middleware``, the middleware sits inside Starlette's outermost error middleware,
which renders the response to an unhandled exception (the app's 500 handler, or the debug page).
To record the status actually sent and put the request id on it, the app's built middleware
stack is wrapped in a thin observer (``build_middleware_stack`` of Starlette and FastAPI is
patched when they are imported, for apps that list this middleware; failing that, the stack is
wrapped the first time the app is seen). A request whose exception escapes us is finished by
that observer once the response is out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import wrapt

from .. import semconv as sc
from .._engine import Telemetry, default_telemetry
from .._lifecycle import RequestLifecycle
from ..health import QUERY_KEY
from ._routes import RecordedRoutes, RouteResolver, RouteSource, resolver_for

__all__ = ["TelemetryMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_log = logging.getLogger("telemetry_web")
# Set on the scope by the first copy of the middleware; a second copy passes the request through.
_SCOPE_KEY = "telemetry_web.request"
# Set by the observer around a Starlette app's middleware stack (see _ErrorResponseObserver).
_OBSERVER_KEY = "telemetry_web.error_observer"
# (source, token) of the request's route label, for the check once the app ran (see _finish).
_ROUTE_KEY = "telemetry_web.route"
# For apps no source understands: reads what a Starlette router recorded, if one ran.
_RECORDED = RecordedRoutes()
_perf = time.perf_counter


class TelemetryMiddleware:
    """Telemetry for every HTTP request and websocket of an ASGI app.

    Args:
        app: the ASGI application.
        telemetry: the :class:`~telemetry_web.Telemetry` to record into (default: one built from
            the environment, shared by the process).
        route_resolver: ``scope -> template or None``, for apps whose router no built-in
            source and no ``telemetry_web.route_resolvers`` plugin understands.
    """

    def __init__(
        self,
        app: ASGIApp,
        telemetry: Telemetry | None = None,
        *,
        route_resolver: RouteResolver | None = None,
    ) -> None:
        self.app = app
        self.telemetry = telemetry if telemetry is not None else default_telemetry()
        self.route_resolver = route_resolver
        self._routers: dict[int, RouteSource] = {}
        self._header_maps: dict[int, dict[bytes, str]] = {}
        self._joined: frozenset[str] = _LISTS  # headers whose repeated lines are joined
        self._silenced: set[int] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" and _SCOPE_KEY not in scope:
            await self._http(scope, receive, send)
        elif kind == "websocket" and _SCOPE_KEY not in scope:
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # --- HTTP ---------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = self.telemetry
        if telemetry.health.needs_start:  # no lifespan (or a new loop): checks start here
            telemetry.start_health_checks(thread=False)
        path = scope["path"]
        endpoint = telemetry.endpoints.get(path)
        if endpoint is not None and scope["method"] in ("GET", "HEAD"):
            await self._builtin(endpoint, scope, send)
            return
        if telemetry.is_excluded(path):
            await self.app(scope, receive, send)
            return
        scope[_SCOPE_KEY] = True
        app_object = scope.get("app")
        if app_object is not None and id(app_object) not in self._silenced:
            self._adopt_app(app_object)
        elif app_object is None and id(self.app) not in self._silenced:
            # Wrapped around the app from outside and no lifespan ran (an in-process client):
            # the app below us is not in the scope yet, adopt it from our own chain.
            self._adopt_app(self.app)
        life = telemetry.lifecycle
        headers = self._headers(scope, life)
        try:
            active = life.begin(
                method=scope["method"],
                scheme=scope.get("scheme", "http"),
                path=path,
                query=_query(scope),
                route=self._route(scope),
                headers=headers,
                client=_client(scope),
                server=scope.get("server"),
                protocol_version=scope.get("http_version"),
            )
        except Exception:  # telemetry must never cost the request
            _log.exception("telemetry-web could not start recording a request")
            await self.app(scope, receive, send)
            return

        status = 0
        response_started = False
        disconnected = False
        # The declared body size counts even when the app never reads the body (a 405, a 401).
        declared = headers.get("content-length", "")
        request_size = int(declared) if declared.isdigit() and len(declared) < 16 else 0
        received = 0
        response_size = 0
        ended: float | None = None
        id_name = life.request_id_header.encode("latin-1")
        id_header = (id_name, active.request_id.encode("latin-1"))
        capture = self._response_headers(life)

        async def receive_counted() -> Message:
            nonlocal request_size, received, disconnected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > request_size:  # chunked bodies declare no length
                    request_size = received
            elif message["type"] == "http.disconnect":
                disconnected = True
            return message

        async def send_observed(message: Message) -> None:
            nonlocal status, response_started, response_size, ended
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                response_started = True
                headers = message.get("headers") or []
                if capture is not None:
                    _capture_response(active, headers, capture)
                if not any(name.lower() == id_name for name, _ in headers):
                    message = {**message, "headers": [*headers, id_header]}
            elif kind == "http.response.body":
                response_size += len(message.get("body", b""))
                if not message.get("more_body", False):
                    ended = _perf()
            await send(message)

        error: BaseException | None = None
        deferred = False
        try:
            await self.app(scope, receive_counted, send_observed)
        except BaseException as exc:
            error = exc
            if not response_started and isinstance(exc, Exception):
                observer = scope.get(_OBSERVER_KEY)
                if observer is not None:
                    # The app's error middleware answers outside us: finish when it has.
                    observer.defer(active, request_size, exc, id_header)
                    deferred = True
                elif _plain_500_expected(app_object):
                    # Nobody else answers but the server or Starlette's default handler, with a
                    # plain 500 and no request id: send that 500 ourselves, with one.
                    await _safe_500(send_observed)
            raise
        finally:
            if deferred:
                pass
            elif not response_started or status == 0:
                status = 499 if disconnected or isinstance(error, asyncio.CancelledError) else 500
            elif error is not None and isinstance(error, Exception) and status < 500:
                pass  # the response was already on its way; its status is what the client saw
            if not deferred:
                _finish(active, scope, status, request_size, response_size, error, ended)

    async def _builtin(self, endpoint: Any, scope: Scope, send: Send) -> None:
        headers = _pick_headers(scope, _ENDPOINT_HEADERS)
        query = _query(scope)
        if query:
            headers[QUERY_KEY] = query
        status, response_headers, body = endpoint(headers)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response_headers]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    def _route(self, scope: Scope) -> str:
        """The label before the app runs; the source's token is kept for ``_finish``."""
        if self.route_resolver is not None:
            return _resolved(self.route_resolver, scope)
        try:
            source = self._source(scope)
            template, token = source.before(scope)
        except Exception:
            _log.exception("telemetry-web could not resolve a route; labelling it <unmatched>")
            return sc.ROUTE_UNMATCHED
        if token is not None:
            scope[_ROUTE_KEY] = (source, token)
        return template or sc.ROUTE_UNMATCHED

    def _source(self, scope: Scope) -> RouteSource:
        """The app's source of labels, found once per app object."""
        app = scope.get("app", self.app)
        try:
            return self._routers[id(app)]
        except KeyError:
            source = self._routers[id(app)] = resolver_for(app) or _RECORDED
            return source

    def _response_headers(self, life: RequestLifecycle) -> dict[bytes, str] | None:
        """The response headers to capture, by raw name; None (the usual case) for none."""
        if not life.response_header_names:
            return None
        key = -id(life)
        wanted = self._header_maps.get(key)
        if wanted is None:
            wanted = {name.encode("latin-1"): name for name in life.response_header_names}
            self._header_maps[key] = wanted
        return wanted

    def _headers(self, scope: Scope, life: RequestLifecycle) -> dict[str, str]:
        wanted = self._header_maps.get(id(life))
        if wanted is None:
            self._header_maps.clear()
            wanted = {name.encode("latin-1"): name for name in life.wanted_headers}
            self._header_maps[id(life)] = wanted
            # Captured headers sent on several lines are joined, as WSGI servers join them.
            self._joined = _LISTS | {name for name, _, _ in life.captured_request}
        return _pick_headers(scope, wanted, self._joined)

    # --- websockets ---------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = self.telemetry
        if telemetry.tracer is None or telemetry.is_excluded(scope["path"]):
            await self.app(scope, receive, send)
            return
        scope[_SCOPE_KEY] = True
        life = telemetry.lifecycle
        active = life.begin(
            method="GET",  # the handshake is a GET request
            scheme=scope.get("scheme", "ws"),
            path=scope["path"],
            query=_query(scope),
            route=self._route(scope),
            headers=self._headers(scope, life),
            client=_client(scope),
            server=scope.get("server"),
            kind="websocket",
        )
        status = 0

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "websocket.accept":
                status = 101
            elif (
                message["type"] in ("websocket.close", "websocket.http.response.start")
                and not status
            ):
                status = message.get("status", 403)
            await send(message)

        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_observed)
        except BaseException as exc:
            error = exc
            raise
        finally:
            active.finish(status or 500, exception=error if isinstance(error, Exception) else None)

    # --- lifespan -----------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_observed() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for candidate in (scope.get("app"), self.app):
                    self._adopt_app(candidate)
            elif message["type"] == "lifespan.shutdown":
                # Before the app closes its pools: checks must not report that as an outage.
                await self.telemetry.health.stop_async()
            return message

        async def send_observed(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                # Health checks run as a task on this loop, once the app's resources exist.
                self.telemetry.start_health_checks(thread=False)
            elif message["type"] == "lifespan.shutdown.complete":
                # Deliver what is queued before the server exits (SIGTERM under uvicorn).
                await asyncio.get_running_loop().run_in_executor(None, self.telemetry.flush)
            await send(message)

        await self.app(scope, receive_observed, send_observed)

    def _adopt_app(self, app: Any) -> None:
        """Once per app: observe its error responses, and silence FastAPI's own spans."""
        stack = getattr(app, "middleware_stack", None)
        if stack is not None and not isinstance(stack, _ErrorResponseObserver):
            app.middleware_stack = _ErrorResponseObserver(stack)
        self._silence_framework_telemetry(app)

    def _silence_framework_telemetry(self, app: Any) -> None:
        """Switch off FastAPI's own OpenTelemetry spans: this middleware's span replaces them."""
        depth = 0
        while app is not None and depth < 32:
            if id(app) in self._silenced:
                return
            self._silenced.add(id(app))
            config = getattr(app, "_telemetry", None)
            if isinstance(config, dict) and "operation_spans" in config:
                config.update(tracing=False, metrics=False, logs=False, operation_spans=False)
            app = getattr(app, "app", None)
            depth += 1


def _query(scope: Scope) -> str:
    raw = scope.get("query_string")
    if not raw:
        return ""
    try:
        return raw.decode("utf-8")  # type: ignore[no-any-return]
    except UnicodeDecodeError:
        return ""


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


# The request headers the built-in endpoints read.
_ENDPOINT_HEADERS = {b"accept": "accept", b"accept-encoding": "accept-encoding",
                     b"authorization": "authorization"}  # fmt: skip


# Trace context that must be stated once: two different values make it absent (a new root trace).
_SINGLE_VALUED = frozenset({"traceparent", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled",
                            "x-b3-parentspanid", "x-b3-flags"})  # fmt: skip
# Lists that may be split over several header lines (W3C): joined, as one header.
_LISTS = frozenset({"tracestate", "baggage"})


def _pick_headers(
    scope: Scope, wanted: dict[bytes, str], joined: frozenset[str] = _LISTS
) -> dict[str, str]:
    """The wanted headers, decoded; one that is not valid UTF-8 counts as absent."""
    found: dict[str, str] = {}
    conflicting: set[str] | None = None
    for raw_name, raw_value in scope.get("headers", ()):
        name = wanted.get(raw_name)
        if name is not None:
            try:
                value = raw_value.decode("utf-8")
            except UnicodeDecodeError:
                continue
            previous = found.get(name)
            if previous is None or previous == value:
                found[name] = value
            elif name in joined:
                found[name] = f"{previous},{value}"
            elif name in _SINGLE_VALUED:
                conflicting = (conflicting or set()) | {name}
            else:
                found[name] = value  # the last one wins, as in most frameworks
    if conflicting:
        for name in conflicting:
            del found[name]
    return found


def _capture_response(active: Any, headers: Any, wanted: dict[bytes, str]) -> None:
    """Hand the wanted response headers (repeated ones joined by commas) to the request."""
    found: dict[str, str] = {}
    try:
        for raw_name, raw_value in headers:
            name = wanted.get(raw_name) or wanted.get(raw_name.lower())
            if name is not None:
                try:
                    value = raw_value.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                found[name] = f"{found[name]},{value}" if name in found else value
        if found:
            active.capture_response_headers(found)
    except Exception:
        _log.exception("telemetry-web could not capture response headers")


def _resolved(resolver: RouteResolver, scope: Scope) -> str:
    """The label from the user's ``route_resolver``."""
    try:
        template = resolver(dict(scope))
    except Exception:
        _log.exception("route_resolver failed; labelling the request <unmatched>")
        template = None
    if template:
        return template
    # What a Starlette router records while the app runs may still label it.
    scope[_ROUTE_KEY] = (_RECORDED, _RECORDED.before(scope)[1])
    return sc.ROUTE_UNMATCHED


def _route_from_scope(scope: Scope) -> str | None:
    """The route label the framework recorded while the app ran, or None to keep ours."""
    pending = scope.get(_ROUTE_KEY)
    if pending is None:
        return None
    source, token = pending
    return source.after(scope, token)  # type: ignore[no-any-return]


def _finish(
    active: Any,
    scope: Scope,
    status: int,
    request_size: int,
    response_size: int,
    error: BaseException | None,
    ended: float | None,
) -> None:
    # What the framework recorded wins: the span name, metrics and log line all carry it.
    try:
        late = _route_from_scope(scope)
    except Exception:
        _log.exception("telemetry-web could not read the route the framework recorded")
        late = None
    if late is not None:
        active.route = late
    try:
        active.finish(
            status,
            request_size=request_size,
            response_size=response_size,
            exception=error if isinstance(error, Exception) else None,
            ended=ended,
        )
    except Exception:
        _log.exception("telemetry-web could not record a request")


def _plain_500_expected(app: Any) -> bool:
    """Whether the response to an escaped exception would be a plain 500 anyway.

    True for a plain ASGI app (the server answers) and for a Starlette app without a 500
    handler and not in debug mode. The observer handles every other case, from the app's
    second request on (or its first, when the server runs the lifespan, as uvicorn does).
    """
    if app is None:
        return True
    if getattr(app, "debug", False):
        return False
    handlers = getattr(app, "exception_handlers", None) or {}
    return 500 not in handlers and Exception not in handlers


class _Deferred:
    """A request whose exception escaped the middleware, waiting for the error response."""

    __slots__ = ("active", "ended", "error", "id_header", "request_size", "response_size", "status")

    def __init__(
        self, active: Any, request_size: int, error: Exception, id_header: tuple[bytes, bytes]
    ) -> None:
        self.active = active
        self.request_size = request_size
        self.error = error
        self.id_header = id_header
        self.status = 0
        self.response_size = 0
        self.ended: float | None = None


class _ErrorResponseObserver:
    """Wraps a Starlette app's built middleware stack (outermost: its error middleware), to see
    the response to an exception that escaped ``TelemetryMiddleware``. Costs one send wrapper
    per request; does work only for a deferred request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = _ObserverSlot()
        scope[_OBSERVER_KEY] = slot

        async def send_outer(message: Message) -> None:
            deferred = slot.deferred
            if deferred is not None:
                kind = message["type"]
                if kind == "http.response.start":
                    deferred.status = message["status"]
                    headers = message.get("headers") or []
                    names = deferred.active.life.response_header_names
                    if names:
                        wanted = {name.encode("latin-1"): name for name in names}
                        _capture_response(deferred.active, headers, wanted)
                    if not any(name.lower() == deferred.id_header[0] for name, _ in headers):
                        message = {**message, "headers": [*headers, deferred.id_header]}
                elif kind == "http.response.body":
                    deferred.response_size += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        deferred.ended = _perf()
            await send(message)

        try:
            await self.app(scope, receive, send_outer)
        finally:
            deferred = slot.deferred
            if deferred is not None:
                _finish(
                    deferred.active,
                    scope,
                    deferred.status or 500,
                    deferred.request_size,
                    deferred.response_size,
                    deferred.error,
                    deferred.ended,
                )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # look like the stack we wrap (its .app, .handler, …)


class _ObserverSlot:
    __slots__ = ("deferred",)

    def __init__(self) -> None:
        self.deferred: _Deferred | None = None

    def defer(
        self, active: Any, request_size: int, error: Exception, id_header: tuple[bytes, bytes]
    ) -> None:
        self.deferred = _Deferred(active, request_size, error, id_header)


async def _safe_500(send: Send) -> None:
    try:
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"21"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"Internal Server Error"})
    except Exception:  # the client is gone; the exception that caused this is what matters
        pass


def _observe_built_stack(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    stack = wrapped(*args, **kwargs)
    for middleware in getattr(instance, "user_middleware", ()):
        cls = getattr(middleware, "cls", None)
        if isinstance(cls, type) and issubclass(cls, TelemetryMiddleware):
            return _ErrorResponseObserver(stack)
    return stack


def _patch_build_middleware_stack(module: Any, class_name: str) -> None:
    cls = getattr(module, class_name, None)
    method = getattr(cls, "build_middleware_stack", None)
    if method is not None and not isinstance(method, wrapt.FunctionWrapper):
        wrapt.wrap_function_wrapper(
            module, f"{class_name}.build_middleware_stack", _observe_built_stack
        )


# Runs when (or, if already imported, as soon as) each framework module is imported.
wrapt.register_post_import_hook(
    lambda module: _patch_build_middleware_stack(module, "Starlette"), "starlette.applications"
)
wrapt.register_post_import_hook(
    lambda module: _patch_build_middleware_stack(module, "FastAPI"), "fastapi.applications"
)
