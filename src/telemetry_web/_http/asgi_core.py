"""The ASGI middleware's request path, compiled (``scripts/compile.py``).

:class:`ASGICore` holds everything :class:`telemetry_web.asgi.TelemetryMiddleware` does but
its ``__call__``: that one is defined in the uncompiled ``asgi.py``, because servers and
frameworks tell an ASGI 3 app by ``asyncio.iscoroutinefunction(app.__call__)``, which is false
for a compiled coroutine function. The middleware's docstring describes the request path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from mypy_extensions import mypyc_attr

from .. import semconv as sc
from .._engine import Telemetry, default_telemetry
from .._lifecycle import RequestLifecycle
from .endpoints import answer_asgi
from .error_responses import (
    OBSERVER_KEY,
    PLAIN_500,
    ErrorResponseObserver,
    plain_500_expected,
    safe_500,
)
from .exchange import RECORDED, ROUTE_KEY, Exchange, resolved_route
from .routes import RouteResolver, RouteSource, resolver_for
from .scope import LISTS, ASGIApp, Message, Receive, Scope, Send, client, pick_headers, query

__all__ = ["SCOPE_KEY", "ASGICore"]

_log: Final = logging.getLogger("telemetry_web")
# Set on the scope by the first copy of the middleware; a second copy passes the request through.
SCOPE_KEY: Final = "telemetry_web.request"


# The middleware extends it (and so may users): a compiled class Python code may extend.
@mypyc_attr(allow_interpreted_subclasses=True)
class ASGICore:
    """What :class:`~telemetry_web.asgi.TelemetryMiddleware` does (its arguments too), but
    dispatching each call by its scope's type (its ``__call__``)."""

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
        self._per_life = _PerLifecycle(None)  # what the headers need, for the lifecycle in use
        self._silenced: set[int] = set()

    # --- HTTP ---------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = self.telemetry
        if telemetry.health.needs_start:  # no lifespan (or a new loop): checks start here
            telemetry.start_health_checks(thread=False)
        path = scope["path"]
        endpoint = telemetry.endpoints.get(path)
        if endpoint is not None and scope["method"] in ("GET", "HEAD"):
            await answer_asgi(endpoint, scope, send)
            return
        if telemetry.is_excluded(path):
            await self.app(scope, receive, send)
            return
        exchange = self._begin(scope, receive, send)
        if exchange is None:  # telemetry must never cost the request
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except BaseException as exc:
            exchange.error = exc
            if not exchange.started and isinstance(exc, Exception):
                await self._answer_error(scope, exchange)
            raise
        finally:
            exchange.finish(scope)

    def _begin(self, scope: Scope, receive: Receive, send: Send) -> Exchange | None:
        """The lifecycle's ``begin`` for this request, and its exchange (None: not recorded)."""
        scope[SCOPE_KEY] = True
        app_object = scope.get("app")
        if app_object is not None:
            if id(app_object) not in self._silenced:
                self._adopt_app(app_object)
        elif id(self.app) not in self._silenced:
            # Wrapped around the app from outside and no lifespan ran (an in-process client):
            # the app below us is not in the scope yet, adopt it from our own chain.
            self._adopt_app(self.app)
        life = self.telemetry.lifecycle
        per_life = self._per_life
        if per_life.life is not life:
            per_life = self._per_life = _PerLifecycle(life)
        headers = pick_headers(scope, per_life.wanted, per_life.joined)
        raw_query = scope.get("query_string")
        address = scope.get("client")
        try:
            active = life.begin(
                method=scope["method"],
                scheme=scope.get("scheme", "http"),
                path=scope["path"],
                query=query(scope) if raw_query else "",
                route=self._route(scope),
                headers=headers,
                client=address[0] if address else None,
                server=scope.get("server"),
                protocol_version=scope.get("http_version"),
            )
        except Exception:
            _log.exception("telemetry-web could not start recording a request")
            return None
        declared = headers.get("content-length", "")
        size = int(declared) if declared.isdigit() and len(declared) < 16 else 0
        return Exchange(active, receive, send, app_object, per_life.id_name, size, per_life.capture)

    async def _answer_error(self, scope: Scope, exchange: Exchange) -> None:
        """An exception escaped the app before any response: who answers the client?"""
        observer = scope.get(OBSERVER_KEY)
        if observer is not None and observer is not PLAIN_500:
            # The app's error middleware answers outside us: finish when it has.
            observer.defer(exchange)
        elif observer is PLAIN_500 or plain_500_expected(exchange.app):
            # Nobody else answers but the server or Starlette's default handler, with a plain
            # 500 and no request id: send that 500 ourselves, with one.
            await safe_500(exchange.send)

    def _route(self, scope: Scope) -> str:
        """The label before the app runs; the source's token is kept for ``Exchange.finish``."""
        if self.route_resolver is not None:
            return resolved_route(self.route_resolver, scope)
        try:
            source = self._source(scope)
            template, token = source.before(scope)
        except Exception:
            _log.exception("telemetry-web could not resolve a route; labelling it <unmatched>")
            return sc.ROUTE_UNMATCHED
        if token is not None:
            scope[ROUTE_KEY] = (source, token)
        return template or sc.ROUTE_UNMATCHED

    def _source(self, scope: Scope) -> RouteSource:
        """The app's source of labels, found once per app object."""
        app = scope.get("app", self.app)
        try:
            return self._routers[id(app)]
        except KeyError:
            source = self._routers[id(app)] = resolver_for(app) or RECORDED
            return source

    def _headers(self, scope: Scope, life: RequestLifecycle) -> dict[str, str]:
        per_life = self._per_life
        if per_life.life is not life:
            per_life = self._per_life = _PerLifecycle(life)
        return pick_headers(scope, per_life.wanted, per_life.joined)

    # --- websockets ---------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        telemetry = self.telemetry
        if telemetry.tracer is None or telemetry.is_excluded(scope["path"]):
            await self.app(scope, receive, send)
            return
        scope[SCOPE_KEY] = True
        life = telemetry.lifecycle
        active = life.begin(
            method="GET",  # the handshake is a GET request
            scheme=scope.get("scheme", "ws"),
            path=scope["path"],
            query=query(scope),
            route=self._route(scope),
            headers=self._headers(scope, life),
            client=client(scope),
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
        if stack is not None and not isinstance(stack, ErrorResponseObserver):
            app.middleware_stack = ErrorResponseObserver(stack, plain_500_expected(app))
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


class _PerLifecycle:
    """What reading a request's headers and its response needs, for one lifecycle (built when
    the telemetry's lifecycle changes, not per request)."""

    __slots__ = ("capture", "id_name", "joined", "life", "wanted")

    def __init__(self, life: RequestLifecycle | None) -> None:
        self.life = life
        if life is None:
            self.wanted: dict[bytes, str] = {}
            self.joined: frozenset[str] = LISTS
            self.capture: dict[bytes, str] | None = None
            self.id_name = b""
            return
        self.wanted = {name.encode("latin-1"): name for name in life.wanted_headers}
        # Captured headers sent on several lines are joined, as WSGI servers join them.
        self.joined = LISTS | {name for name, _, _ in life.captured_request}
        # The response headers to capture, by raw name; None (the usual case) for none.
        names = life.response_header_names
        self.capture = {name.encode("latin-1"): name for name in names} if names else None
        self.id_name = life.request_id_header.encode("latin-1")
