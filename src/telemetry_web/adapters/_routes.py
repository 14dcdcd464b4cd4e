"""Route templates from a Starlette/FastAPI router, joined across mounts and included routers.

Resolved before the app runs (so the span name, the in-progress gauge and the log context carry
the template from the start) by matching the router's routes against a copy of the scope, as the
router itself will. Results are cached per (method, path): the cache is bounded, and a path that
matches nothing resolves to ``<unmatched>`` so scanners cannot grow the label set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["RouteResolver", "StarletteRoutes", "find_routes"]

RouteResolver = Callable[[dict[str, Any]], "str | None"]
_CACHE_SIZE = 4096


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


class StarletteRoutes:
    """``resolve(scope)`` → the route template, e.g. ``/v1/users/{user_id}``, or None."""

    def __init__(self, routes: Sequence[Any]) -> None:
        from starlette.routing import Match

        self._full = Match.FULL
        self._partial = Match.PARTIAL
        self.routes = routes
        self._cache: dict[tuple[str, str, int, str], str | None] = {}
        # With Host routes the same path can resolve differently per host: key on it too.
        self._by_host = any(type(r).__name__ == "Host" for r in routes)

    def resolve(self, scope: dict[str, Any]) -> str | None:
        # The route count is part of the key: routes added at run time invalidate old misses.
        host = _host(scope) if self._by_host else ""
        key = (scope.get("method", ""), scope["path"], len(self.routes), host)
        try:
            return self._cache[key]
        except KeyError:
            pass
        try:
            template = self._match(self.routes, dict(scope), 0)
        except Exception:  # a custom route whose matches() fails: unmatched, never a 500
            template = None
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = template
        return template

    def _match(self, routes: Sequence[Any], scope: dict[str, Any], depth: int) -> str | None:
        partial: str | None = None
        for route in routes:
            match, child = route.matches(scope)
            if match == self._full:
                return self._template(route, {**scope, **child}, depth)
            if match == self._partial and partial is None:
                partial = self._template(route, {**scope, **child}, depth)
        return partial

    def _template(self, route: Any, scope: dict[str, Any], depth: int) -> str | None:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            return self._included(contexts(), scope)
        path = getattr(route, "path", None)
        inner_routes = getattr(route, "routes", None)
        if inner_routes is not None and depth < 8 and _is_mount(route):
            inner = self._match(inner_routes, scope, depth + 1) if inner_routes else None
            prefix = path or ""
            return prefix + inner if inner is not None else (prefix + "/{path}" if prefix else None)
        return path if isinstance(path, str) else None

    def _included(self, contexts: Any, scope: dict[str, Any]) -> str | None:
        """FastAPI 0.13x+ includes routers lazily: each effective route knows its full path."""
        partial: str | None = None
        for context in contexts:
            match, _child = context.matches(scope)
            if match == self._full or (match == self._partial and partial is None):
                inner = getattr(context, "starlette_route", None)
                template = getattr(inner, "path_format", None) or getattr(
                    context, "path_format", None
                )
                if match == self._full:
                    return template if isinstance(template, str) else None
                partial = template if isinstance(template, str) else None
        return partial


def _host(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host: str = value.decode("latin-1")
            return host.split(":", 1)[0]
    return ""


def _is_mount(route: Any) -> bool:
    return type(route).__name__ in ("Mount", "Host") or (
        hasattr(route, "app") and hasattr(route, "routes") and not hasattr(route, "endpoint")
    )
