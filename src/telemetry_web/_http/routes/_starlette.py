"""Route templates of Starlette and FastAPI apps, joined across mounts and included routers.

Before the app runs, the router's routes are matched against a copy of the scope, as the router
itself will match them, descending into mounts (through the middleware wrapped around a mounted
app), hosts and FastAPI's included routers. Each route list is asked only for the routes its index
(``_index.py``) finds for the path, so a label costs the same with 10 or 1,000 routes, for new
ids and for unmatched paths alike. Results are cached per (method, path, root path, host when
``Host`` routes exist); the cache is bounded, and the route count is part of the key.

After the app ran, what the router recorded wins: ``scope["route"]`` (the innermost route
matched; FastAPI's effective route context for an included router's route) joined with the
templates of the mounts that added ``scope["root_path"]``. That covers a middleware rewriting
the path before the router and routes added after the first request. A concrete mount prefix is
turned back into its template (``/tenants/{tid}``) by matching the mounts again, never used as
the label itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._base import CACHE_SIZE, RouteSource
from ._index import RouteIndex

__all__ = ["RecordedRoutes", "Resolution", "StarletteRoutes", "find_routes"]

_MAX_DEPTH = 8
_MAX_INDEXES = 256  # route lists indexed per source (one per router, mounted ones included)


def find_routes(app: Any, depth: int = 0) -> Sequence[Any] | None:
    """The route list of the Starlette/FastAPI app at or below ``app`` (through middleware)."""
    seen = 0
    while app is not None and seen < 32:
        router = getattr(app, "router", None)
        routes = getattr(router, "routes", None)
        if isinstance(routes, list):
            return routes
        routes = getattr(app, "routes", None)
        if isinstance(routes, list) and hasattr(app, "url_path_for"):
            return routes
        app = getattr(app, "app", None)
        seen += 1
    return None


class Resolution(NamedTuple):
    """One pre-resolved request: its label and what the router is expected to record."""

    template: str
    leaf: Any  # the route (or FastAPI effective route context) the router will record
    concrete: str  # the root path the mounts add for this path, e.g. ``/tenants/7``


class StarletteRoutes(RouteSource):
    """Route labels for a Starlette/FastAPI route list, e.g. ``/v1/users/{user_id}``.

    Args:
        routes: the app's route list (read again on every cache miss: routes may be added).
        other_app: ``app -> RouteSource or None`` for apps mounted here that are not Starlette
            (a Litestar or Quart app under a ``Mount``).
    """

    def __init__(
        self,
        routes: Sequence[Any],
        other_app: Callable[[Any], RouteSource | None] | None = None,
    ) -> None:
        from starlette.routing import Match

        self._full = Match.FULL
        self._none = Match.NONE
        self.routes = routes
        self._other_app = other_app
        self._others: dict[int, RouteSource | None] = {}
        self._cache: dict[tuple[str, str, str, int, str], Resolution | None] = {}
        self._prefixes: dict[tuple[str, str, str], str | None] = {}
        self._indexes: dict[int, RouteIndex] = {}  # by id of the route list (mounts' too)
        # With Host routes the same path can resolve differently per host: key on it too.
        self._by_host = any(type(r).__name__ == "Host" for r in routes)

    # --- before the app runs ------------------------------------------------------------------

    def before(self, scope: Any) -> tuple[str | None, Any]:
        root_path = scope.get("root_path", "")
        resolution = self.resolution(scope)
        return (resolution.template if resolution else None), (resolution, root_path)

    def resolution(self, scope: Any) -> Resolution | None:
        """The cached pre-resolution of ``scope``."""
        host = _host(scope) if self._by_host else ""
        # The route count is part of the key: routes added at run time invalidate old misses.
        key = (
            scope.get("method", ""),
            scope["path"],
            scope.get("root_path", ""),
            len(self.routes),
            host,
        )
        try:
            return self._cache[key]
        except KeyError:
            pass
        try:
            probe = {**scope, _ROOT: scope.get("root_path", "")}
            found = self._match(self.routes, probe, "", 0)
            resolution = found[1] if found is not None else None
        except Exception:  # a custom route whose matches() fails: unmatched, never a 500
            resolution = None
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = resolution
        return resolution

    def _match(
        self, routes: Sequence[Any], scope: dict[str, Any], prefix: str, depth: int
    ) -> tuple[Any, Resolution | None] | None:
        """(match, resolution) of the route the router picks: the first full match, else the
        first partial one (a 405); None when nothing matches. Only the routes the index finds
        for the path are asked, in the router's order."""
        partial: tuple[Any, Resolution | None] | None = None
        for route, is_context in self._index(routes).candidates(_route_path(scope)):
            match, child = route.matches(scope)
            if match == self._none:
                continue
            child_scope = {**scope, **child}
            inner = getattr(route, "starlette_route", None) if is_context else route
            if inner is not None:  # a FastAPI context of a plain route, mount or host: its copy
                found = (match, self._descend(inner, child_scope, prefix, depth))
            else:  # an APIRoute's effective context: the router records that context
                found = (match, _resolution(prefix, _declared(route), route, child_scope))
            if match == self._full:
                return found
            if partial is None:
                partial = found
        return partial

    def _index(self, routes: Sequence[Any]) -> RouteIndex:
        """The index of one route list, rebuilt when the list changed."""
        known = self._indexes.get(id(routes))
        if known is not None and known.source is routes and known.is_current():
            return known
        index = RouteIndex(routes)
        if len(self._indexes) >= _MAX_INDEXES:
            self._indexes.clear()
        self._indexes[id(routes)] = index
        return index

    def _descend(
        self, route: Any, scope: dict[str, Any], prefix: str, depth: int
    ) -> Resolution | None:
        if not _is_mount(route):
            return _resolution(prefix, _declared(route), route, scope)
        here = prefix + (getattr(route, "path", None) or "")  # a Host adds no path
        if depth >= _MAX_DEPTH:
            return None
        inner_routes = _inner_routes(route)
        if inner_routes is not None:
            # A router we can read matched nothing inside the mount: the framework answers 404
            # (or redirects a slash), and the request is <unmatched> like one at the top.
            found = self._match(inner_routes, scope, here, depth + 1)
            return found[1] if found is not None else None
        other = self._other(route)
        if other is not None:
            template = other.before(scope)[0]
            return None if template is None else Resolution(here + template, route, _gained(scope))
        # An app we cannot read (static files, a WSGI app): the mount's template.
        if getattr(route, "path", None) is None:
            return None
        return Resolution(here + "/{path}", route, _gained(scope))

    def _other(self, route: Any) -> RouteSource | None:
        app = getattr(route, "app", None)
        if self._other_app is None or app is None:
            return None
        key = id(app)
        if key not in self._others:
            self._others[key] = self._other_app(app)
        return self._others[key]

    # --- after the app ran --------------------------------------------------------------------

    def after(self, scope: Any, token: Any) -> str | None:
        leaf = scope.get("route")
        if leaf is None:  # nothing recorded (a FastAPI mount, an early answer): keep ours
            return None
        fastapi = scope.get("fastapi")
        if fastapi:
            context = fastapi.get("effective_route_context")
            if context is not None and getattr(context, "original_route", None) is leaf:
                leaf = context
        resolution, root_path = token
        final_root = scope.get("root_path", "")
        if (
            resolution is not None
            and leaf is resolution.leaf
            and final_root == root_path + resolution.concrete
        ):
            return None  # the router did what we expected
        if not final_root.startswith(root_path):
            return None
        if _is_mount(leaf) and self._other(leaf) is not None:
            return None  # a Litestar/Quart sub-app that matched nothing: keep <unmatched>
        relative = _relative(leaf)
        if relative is None:
            return None
        concrete = final_root[len(root_path) :]
        prefix = self._prefix(scope, root_path, concrete) if concrete else ""
        return None if prefix is None else prefix + relative

    def _prefix(self, scope: Any, root_path: str, concrete: str) -> str | None:
        """The template of the mounts that add ``concrete`` to the root path, or None."""
        host = _host(scope) if self._by_host else ""
        key = (root_path, concrete, host)
        try:
            return self._prefixes[key]
        except KeyError:
            pass
        probe = {
            "type": scope.get("type", "http"),
            "path": root_path + concrete + "/",
            "root_path": root_path,
            "headers": scope.get("headers", ()),
            "method": scope.get("method", "GET"),
        }
        try:
            template = self._mounts(self.routes, probe, root_path + concrete, 0)
        except Exception:
            template = None
        if len(self._prefixes) >= CACHE_SIZE:
            self._prefixes.clear()
        self._prefixes[key] = template
        return template

    def _mounts(
        self, routes: Sequence[Any], probe: dict[str, Any], target: str, depth: int
    ) -> str | None:
        for route, is_context in self._index(routes).candidates(_route_path(probe)):
            candidate = getattr(route, "starlette_route", None) if is_context else route
            if candidate is not None and _is_mount(candidate):
                match, child = candidate.matches(probe)
                if match != self._full:
                    continue
                child_probe = {**probe, **child}
                here = getattr(candidate, "path", None) or ""
                gained = child_probe.get("root_path", "")
                if gained == target and here:
                    return here
                inner = _inner_routes(candidate)
                if inner is not None and depth < _MAX_DEPTH and target.startswith(gained):
                    below = self._mounts(inner, child_probe, target, depth + 1)
                    if below is not None:
                        return here + below
        return None


class RecordedRoutes(RouteSource):
    """For an app we cannot read ahead (wrapped in something without ``.app``): no label before
    the app runs, the route the Starlette/FastAPI router recorded (``scope["router"]``) after."""

    def __init__(self) -> None:
        self._routers: dict[int, tuple[Any, StarletteRoutes]] = {}

    def before(self, scope: Any) -> tuple[str | None, Any]:
        return None, (None, scope.get("root_path", ""))

    def after(self, scope: Any, token: Any) -> str | None:
        router = scope.get("router")
        if router is None or "route" not in scope:
            return None
        known = self._routers.get(id(router))
        if known is None or known[0] is not router:
            routes = getattr(router, "routes", None)
            if not isinstance(routes, list):
                return None
            if len(self._routers) >= 64:
                self._routers.clear()
            known = self._routers[id(router)] = (router, StarletteRoutes(routes))
        return known[1].after(scope, token)


def _resolution(
    prefix: str, template: str | None, leaf: Any, scope: dict[str, Any]
) -> Resolution | None:
    if template is None:
        return None
    return Resolution(prefix + template, leaf, _gained(scope))


def _relative(leaf: Any) -> str | None:
    """The template a recorded route adds below the mounts' root path (None for a host, and
    for a mount whose router matched nothing inside it: that request is unmatched)."""
    if not _is_mount(leaf):
        return _declared(leaf)
    if _inner_routes(leaf) is not None:
        return None
    return "/{path}" if isinstance(getattr(leaf, "path", None), str) else None


def _declared(route: Any) -> str | None:
    """A route's own template as declared (``/files/{rest:path}``, converters kept)."""
    for name in ("path", "path_format"):
        value = getattr(route, name, None)
        if isinstance(value, str) and value:
            return value
    return None


def _gained(scope: dict[str, Any]) -> str:
    """The root path the mounts matched so far added (``_ROOT`` holds the request's own)."""
    root = scope.get("root_path", "")
    start = scope.get(_ROOT, root)
    return root[len(start) :] if root.startswith(start) else ""


# The request's root path, kept in the scope copy the matching works on.
_ROOT = "telemetry_web.root_path"


def _inner_routes(route: Any) -> Sequence[Any] | None:
    """The routes inside a mount or host, through any middleware wrapped around its app."""
    routes = getattr(route, "routes", None)
    if not (isinstance(routes, list) and routes):
        routes = find_routes(getattr(route, "app", None))
    # Starlette routes only: a Litestar app, say, has a ``routes`` list of its own.
    return routes if routes and hasattr(routes[0], "matches") else None


def _route_path(scope: Any) -> str:
    """The path a router at this level matches against (Starlette's ``get_route_path``: the
    path below the root path the mounts above added)."""
    path: str = scope["path"]
    root_path = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


def _host(scope: Any) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host: str = value.decode("latin-1")
            return host.split(":", 1)[0]
    return ""


def _is_mount(route: Any) -> bool:
    return type(route).__name__ in ("Mount", "Host") or (
        hasattr(route, "app") and hasattr(route, "routes") and not hasattr(route, "endpoint")
    )
