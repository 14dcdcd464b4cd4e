"""The routes of one Starlette/FastAPI route list that can match a path, found without a scan.

A route's template starts with literal segments (``/api/v1/orders`` in
``/api/v1/orders/{order_id}``), and its regex can only match a path that starts with exactly
those segments. ``RouteIndex`` files every route under its leading literal segments in a trie;
a path walks down the trie by its own segments, and the routes filed on that walk, in list
order, are the only ones worth asking (``route.matches(scope)``, so the framework's own rules
still decide). Routes we cannot read that way (a ``Host``, a custom route class, a mount at the
root, a template starting with a parameter) are asked for every path, as the router asks them.

The cost of a lookup is the path's segment count plus the few candidates, whatever the number of
routes; an unmatched path usually gets no candidate at all. FastAPI's included routers are
flattened into their effective routes (``effective_route_contexts()``), which carry full paths.

An index is built once per route list and rebuilt when the list changes (``is_current``): its
length, its first or last route, or the routes version of an included FastAPI router. That check
reads a few attributes per included router, never the routes themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Entry", "RouteIndex"]

# (the object whose ``matches`` the router calls, whether it is a FastAPI effective context)
Entry = tuple[Any, bool]
_known: frozenset[Any] | None = None


class _Node:
    __slots__ = ("candidates", "children", "own")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.own: list[int] = []  # entries filed here, by position in the list
        self.candidates: tuple[Entry, ...] = ()


class RouteIndex:
    """The candidates of one route list for a route path, in the list's order."""

    __slots__ = ("entries", "first", "last", "length", "root", "routers", "source")

    def __init__(self, routes: Sequence[Any]) -> None:
        self.source = routes
        self.length = len(routes)
        self.first = routes[0] if routes else None
        self.last = routes[-1] if routes else None
        # (FastAPI router, its routes version) of every router included here, nested ones too.
        self.routers: list[tuple[Any, Any]] = []
        self.entries = self._flatten(routes)
        self.root = _Node()
        for position, entry in enumerate(self.entries):
            node = self.root
            for segment in _literal_prefix(entry):
                child = node.children.get(segment)
                if child is None:
                    child = node.children[segment] = _Node()
                node = child
            node.own.append(position)
        self._fill(self.root, [])

    def _fill(self, node: _Node, inherited: list[int]) -> None:
        positions = sorted(inherited + node.own) if node.own else inherited
        node.candidates = tuple(self.entries[p] for p in positions)
        for child in node.children.values():
            self._fill(child, positions)

    def candidates(self, route_path: str) -> tuple[Entry, ...]:
        """The entries that may match ``route_path`` (the path below the router's root)."""
        node = self.root
        if route_path.startswith("/"):
            children = node.children
            for segment in route_path[1:].split("/"):
                child = children.get(segment)
                if child is None:
                    break
                node = child
                children = child.children
        return node.candidates

    def is_current(self) -> bool:
        """Whether the route list still holds what the index was built from."""
        routes = self.source
        if len(routes) != self.length or (
            routes and (routes[0] is not self.first or routes[-1] is not self.last)
        ):
            return False
        for router, version in self.routers:
            if getattr(router, "_routes_version", None) != version:
                return False
        return True

    def _flatten(self, routes: Sequence[Any]) -> list[Entry]:
        entries: list[Entry] = []
        for route in routes:
            contexts = getattr(route, "effective_route_contexts", None)
            if contexts is not None:  # FastAPI's included router: its routes with full paths
                self._watch(getattr(route, "original_router", None), 0)
                entries.extend((context, True) for context in contexts())
            else:
                entries.append((route, False))
        return entries

    def _watch(self, router: Any, depth: int) -> None:
        """Remember the routes version of an included router and of those it includes."""
        if router is None or depth > 16 or any(router is seen for seen, _ in self.routers):
            return
        self.routers.append((router, getattr(router, "_routes_version", None)))
        for route in getattr(router, "routes", ()):
            if hasattr(route, "effective_route_contexts"):
                self._watch(getattr(route, "original_router", None), depth + 1)

    def __len__(self) -> int:
        return len(self.entries)


def _literal_prefix(entry: Entry) -> list[str]:
    """The leading literal segments every path the entry matches starts with ([]: any path)."""
    route, is_context = entry
    if is_context:
        inner = getattr(route, "starlette_route", None)
        if inner is not None:
            route = inner
        elif not _plain_api_route(route):
            return []
    if type(route).matches not in _known_matchers():
        return []  # a route class with its own matching: asked for every path
    path = getattr(route, "path", None)
    if not isinstance(path, str) or not path.startswith("/"):
        return []  # a Host, a mount at the root
    literal: list[str] = []
    for segment in path[1:].split("/"):
        if "{" in segment:
            break
        literal.append(segment)
    return literal


def _plain_api_route(context: Any) -> bool:
    """A FastAPI effective context of an ``APIRoute``, matched by its own full-path regex."""
    try:
        from fastapi.routing import APIRoute
    except ImportError:  # pragma: no cover - contexts exist only with FastAPI
        return False
    original = getattr(context, "original_route", None)
    return isinstance(original, APIRoute) and type(context).matches in _known_matchers()


def _known_matchers() -> frozenset[Any]:
    """The ``matches`` functions whose match is a regex over the declared ``path``."""
    global _known
    if _known is None:
        from starlette.routing import Mount, Route, WebSocketRoute

        known: set[Any] = {Route.matches, WebSocketRoute.matches, Mount.matches}
        try:
            from fastapi import routing as fastapi_routing
        except ImportError:
            pass
        else:
            for name in ("APIRoute", "APIWebSocketRoute", "_EffectiveRouteContext"):
                cls = getattr(fastapi_routing, name, None)
                if cls is not None:
                    known.add(cls.matches)
        _known = frozenset(known)
    return _known
