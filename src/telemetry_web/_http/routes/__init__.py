"""Route templates for the ASGI middleware: which source labels an app, and plugins.

``resolver_for(app)`` finds the source of route labels for an application object, looking
through the middleware wrapped around it (``.app`` chains): Starlette and FastAPI routers
(``_starlette.py``), Litestar and Quart (``_frameworks.py``), then the resolvers registered in
the ``telemetry_web.route_resolvers`` entry-point group. An entry point names a callable
``(app) -> resolver or None``, where a resolver is ``scope -> template or None``; it is tried for
app objects no built-in source understands, so a framework's plugin can ship one::

    [project.entry-points."telemetry_web.route_resolvers"]
    myframework = "myframework.telemetry:route_resolver"

With no source, every request is labelled ``<unmatched>``, never with its raw path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._base import CallableSource, RouteResolver, RouteSource
from ._frameworks import framework_source
from ._starlette import RecordedRoutes, StarletteRoutes, find_routes

__all__ = [
    "ENTRY_POINT_GROUP",
    "CallableSource",
    "RecordedRoutes",
    "RouteResolver",
    "RouteSource",
    "StarletteRoutes",
    "find_routes",
    "resolver_for",
]

ENTRY_POINT_GROUP = "telemetry_web.route_resolvers"

_log = logging.getLogger("telemetry_web")
_plugins: list[tuple[str, Callable[[Any], Any]]] | None = None


def resolver_for(app: Any) -> RouteSource | None:
    """The source of route labels for ``app`` (or an app below it), or None (then
    ``RecordedRoutes()`` still reads what a Starlette router recorded while the app ran).

    Called once per application object (the result is meant to be kept): it may import the
    framework's routing modules and load entry points. The result is callable as a plain
    ``scope -> template or None`` resolver.
    """
    chain = _chain(app)
    for candidate in chain:
        source = _builtin(candidate)
        if source is not None:
            return source
    for candidate in chain:
        for name, factory in _entry_points():
            try:
                resolver = factory(candidate)
            except Exception:
                _log.exception("route resolver plugin %r failed for %r", name, candidate)
                continue
            if resolver is not None:
                return resolver if isinstance(resolver, RouteSource) else CallableSource(resolver)
    return None


def _builtin(app: Any) -> RouteSource | None:
    routes = _own_routes(app)
    if routes is not None:
        return StarletteRoutes(routes, other_app=resolver_for)
    try:
        return framework_source(app)
    except Exception:
        _log.exception("telemetry-web could not read the routes of %r", app)
        return None


def _own_routes(app: Any) -> Any:
    """The Starlette route list held by ``app`` itself (not by an app below it)."""
    routes = getattr(getattr(app, "router", None), "routes", None)
    if not isinstance(routes, list):
        routes = getattr(app, "routes", None)
        if not (isinstance(routes, list) and hasattr(app, "url_path_for")):
            return None
    return routes if not routes or hasattr(routes[0], "matches") else None


def _chain(app: Any) -> list[Any]:
    """``app`` and the apps it wraps (``.app``), outermost first."""
    chain: list[Any] = []
    while app is not None and len(chain) < 32 and all(app is not seen for seen in chain):
        chain.append(app)
        app = getattr(app, "app", None)
    return chain


def _entry_points() -> list[tuple[str, Callable[[Any], Any]]]:
    """The loaded factories of the entry-point group (loaded once per process)."""
    global _plugins
    if _plugins is None:
        from importlib.metadata import entry_points

        loaded: list[tuple[str, Callable[[Any], Any]]] = []
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded.append((entry_point.name, entry_point.load()))
            except Exception:
                _log.exception("could not load route resolver plugin %r", entry_point.name)
        _plugins = loaded
    return _plugins
