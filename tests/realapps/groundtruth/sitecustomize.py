"""Ground truth for the real-app suite: the route each framework's own router matched, per request.

The tests put this directory on ``PYTHONPATH`` of the app (with and without the launcher; under
``telemetry run`` the launcher's ``sitecustomize`` runs this one after its own). It registers
wrapt post-import hooks, so nothing is imported that the app would not import itself, and appends
one JSON line per routed request to ``$REALAPPS_GROUND_TRUTH/routes-<pid>.jsonl``:
``{"rid": <X-Request-ID sent by the test>, "route": <template>, "source": ...}``. A request
for which no line is written was matched by no route (the expected label is ``<unmatched>``).

What counts as "the route the router matched", per framework:

- Starlette / FastAPI: the ``Route`` whose ``handle`` runs (a full match, or the partial match
  that answers 405), its ``path`` prefixed by the ``path`` of every ``Mount`` the request went
  through (whatever middleware wraps the mounted app). A ``Mount`` whose app routes nothing itself
  (``StaticFiles``) is the match: ``<mount path>/{path}``. A mount whose inner router matched no
  route (a 404 or a slash redirect of that router) is unmatched.
- Django: ``resolver_match.route`` of ``BaseHandler.resolve_request``, rendered by the rule the
  README documents (leading slash, regex anchors dropped, named groups as ``<name>``, escaped
  punctuation unescaped); a ``Resolver404`` is unmatched.
- Flask: ``request.url_rule.rule`` when ``request_started`` fires; for a 405 (no ``url_rule``)
  the rule the same path matches under an allowed method, found with the app's own ``url_map``.
- Datasette: the pattern of the first ``(regex, view)`` that ``resolve_routes`` matched for the
  request (the ``DatasetteRouter.route_path`` call of the request), as the raw regex.
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt

_DIR = os.environ.get("REALAPPS_GROUND_TRUTH")
_lock = threading.Lock()


def _record(rid: str | None, route: str, source: str) -> None:
    if not _DIR or not rid:
        return
    line = json.dumps({"rid": rid, "route": route, "source": source, "pid": os.getpid()})
    with _lock, open(os.path.join(_DIR, f"routes-{os.getpid()}.jsonl"), "a") as out:
        out.write(line + "\n")


def _scope_request_id(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"x-request-id":
            rid: str = value.decode("latin-1")
            return rid
    return None


# --- Starlette / FastAPI -------------------------------------------------------------------


class _Mounted:
    """The mounts a request went through, and whether a route or an inner router took it."""

    __slots__ = ("prefix", "recorded", "routed")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.recorded = False
        self.routed = False


_mounted: contextvars.ContextVar[_Mounted | None] = contextvars.ContextVar(
    "realapps_mounted", default=None
)
_starlette_recorded: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "realapps_starlette_recorded", default=False
)


def _starlette_routing(module: ModuleType) -> None:
    def route_handle(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scope = args[0] if args else kwargs["scope"]
        outer = _mounted.get()
        if scope.get("type") == "http" and not _starlette_recorded.get():
            _starlette_recorded.set(True)
            if outer is not None:
                outer.recorded = True
            prefix = outer.prefix if outer is not None else ""
            _record(_scope_request_id(scope), prefix + _route_path(instance, scope), "starlette")
        return wrapped(*args, **kwargs)

    async def mount_handle(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        scope = args[0] if args else kwargs["scope"]
        outer = _mounted.get()
        frame = _Mounted((outer.prefix if outer is not None else "") + instance.path)
        token = _mounted.set(frame)
        try:
            await wrapped(*args, **kwargs)
        finally:
            _mounted.reset(token)
            if outer is not None and (frame.recorded or frame.routed):
                outer.recorded = outer.recorded or frame.recorded
                outer.routed = True
            if (
                scope.get("type") == "http"
                and not frame.recorded
                and not frame.routed
                and not _starlette_recorded.get()
            ):
                _starlette_recorded.set(True)
                if outer is not None:
                    outer.recorded = True
                routes = _inner_routes(instance.app)
                route: str | None
                if routes is None:  # StaticFiles & co: the mount itself is the match
                    route = frame.prefix + "/{path}"
                else:  # a middleware answered before the mounted router ran: ask that router
                    route = _would_match(routes, dict(scope), frame.prefix)
                if route is not None:
                    _record(_scope_request_id(scope), route, "starlette.Mount")

    def router_app(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        frame = _mounted.get()
        if frame is not None:
            frame.routed = True
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Route.handle", route_handle)
    wrapt.wrap_function_wrapper(module, "Mount.handle", mount_handle)
    wrapt.wrap_function_wrapper(module, "Router.app", router_app)
    _starlette_wrappers.update(route_handle=route_handle, router_app=router_app)


_starlette_wrappers: dict[str, Callable[..., Any]] = {}


def _inner_routes(app: Any) -> list[Any] | None:
    """The route list of the router inside ``app`` (through middleware), or None."""
    for _ in range(16):
        routes = getattr(getattr(app, "router", None), "routes", None)
        if isinstance(routes, list):
            return routes
        own = getattr(app, "routes", None)
        if isinstance(own, list) and hasattr(app, "url_path_for"):
            return own
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def _would_match(routes: list[Any], scope: dict[str, Any], prefix: str) -> str | None:
    """The template Starlette's own ``matches`` gives ``scope`` (full match, else partial)."""
    from starlette.routing import Match, Mount

    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = _inner_routes(route.app)
            found = (
                _would_match(inner, {**scope, **child}, prefix + route.path)
                if inner is not None
                else prefix + route.path + "/{path}"
            )
        else:
            found = prefix + _route_path(route, scope)
        if match == Match.FULL:
            return found
        partial = partial or found
    return partial


def _route_path(route: Any, scope: dict[str, Any]) -> str:
    """The declared path; for a FastAPI route reached through an included router, the full one."""
    try:
        from fastapi.routing import _get_scope_effective_route_context
    except ImportError:
        declared: str = route.path
        return declared
    context = _get_scope_effective_route_context(scope)
    if context is not None and getattr(context, "original_route", None) is route:
        inner = getattr(context, "starlette_route", None)
        full: str = getattr(inner, "path", None) or context.path_format
        return full
    declared = route.path
    return declared


def _fastapi_routing(module: ModuleType) -> None:
    """FastAPI's APIRoute.handle and APIRouter.app override Starlette's: wrap them too."""
    import starlette.routing  # noqa: F401  (its hook fills _starlette_wrappers)

    wrapt.wrap_function_wrapper(module, "APIRoute.handle", _starlette_wrappers["route_handle"])
    wrapt.wrap_function_wrapper(module, "APIRouter.app", _starlette_wrappers["router_app"])


# --- Django --------------------------------------------------------------------------------


def django_label(route: str) -> str:
    """``resolver_match.route`` rendered as the README documents Django route labels."""
    import re

    if route.startswith("^"):
        route = route[1:]
    if route.endswith("\\Z"):
        route = route[:-2]
    elif route.endswith("$") and not route.endswith("\\$"):
        route = route[:-1]
    route = re.sub(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)", r"<\1>", route)
    route = re.sub(r"\\([^0-9A-Za-z])", r"\1", route)
    return route if route.startswith("/") else "/" + route


def _django_handler(module: ModuleType) -> None:
    def resolve_request(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        request = args[0] if args else kwargs["request"]
        match = wrapped(*args, **kwargs)  # Resolver404 propagates: unmatched, nothing recorded
        route = getattr(match, "route", None)
        if isinstance(route, str):
            _record(request.META.get("HTTP_X_REQUEST_ID"), django_label(route), "django")
        return match

    wrapt.wrap_function_wrapper(module, "BaseHandler.resolve_request", resolve_request)


# --- Flask ---------------------------------------------------------------------------------


def _flask_signals(module: ModuleType) -> None:
    def started(sender: Any, **_extra: Any) -> None:
        from flask import request
        from werkzeug.exceptions import MethodNotAllowed

        rule = request.url_rule.rule if request.url_rule is not None else None
        exc = request.routing_exception
        if rule is None and isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            adapter = sender.url_map.bind_to_environ(request.environ)
            matched, _args = adapter.match(method=next(iter(exc.valid_methods)), return_rule=True)
            rule = matched.rule
        if rule is not None:
            _record(request.headers.get("X-Request-ID"), rule, "flask")

    module.request_started.connect(started, weak=False)


# --- Datasette -----------------------------------------------------------------------------

_datasette_rid: contextvars.ContextVar[list[str | None] | None] = contextvars.ContextVar(
    "realapps_datasette", default=None
)


def _datasette_app(module: ModuleType) -> None:
    async def route_path(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        scope = args[0] if args else kwargs["scope"]
        if _datasette_rid.get() is not None or scope.get("type") != "http":
            return await wrapped(*args, **kwargs)
        token = _datasette_rid.set([_scope_request_id(scope)])
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _datasette_rid.reset(token)

    def resolve_routes(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, Any]:
        match, view = wrapped(*args, **kwargs)
        pending = _datasette_rid.get()
        if pending:  # the first resolution of this request only
            rid = pending.pop()
            if match is not None:
                _record(rid, match.re.pattern, "datasette")
        return match, view

    wrapt.wrap_function_wrapper(module, "DatasetteRouter.route_path", route_path)
    wrapt.wrap_function_wrapper(module, "resolve_routes", resolve_routes)


if _DIR:
    wrapt.register_post_import_hook(_starlette_routing, "starlette.routing")
    wrapt.register_post_import_hook(_fastapi_routing, "fastapi.routing")
    wrapt.register_post_import_hook(_django_handler, "django.core.handlers.base")
    wrapt.register_post_import_hook(_flask_signals, "flask.signals")
    wrapt.register_post_import_hook(_datasette_app, "datasette.app")
