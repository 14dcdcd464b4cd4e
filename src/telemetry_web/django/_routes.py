"""Route labels from Django's URL resolver: ``/api/users/<int:user_id>``, or ``<unmatched>``.

The lifecycle wants the route when the request begins (span name, in-progress gauge, log
context), before Django has resolved it: :meth:`RouteLabels.before` resolves the path itself,
cached per (urlconf, path) in a bounded dict. :meth:`RouteLabels.after` reads
``request.resolver_match`` once the response is back, which is authoritative (a middleware may
have set ``request.urlconf`` in between).
"""

from __future__ import annotations

from typing import Any

from django.urls import Resolver404, get_urlconf, resolve

from .. import semconv as sc
from .._regex import group_end

__all__ = ["RouteLabels", "route_label"]

_MAX_PATHS = 2048
_MAX_ROUTES = 1024


class RouteLabels:
    """Route label lookups of one middleware instance."""

    def __init__(self, max_paths: int = _MAX_PATHS) -> None:
        self.max_paths = max_paths
        self._by_path: dict[tuple[Any, str], str] = {}
        self._labels: dict[str, str] = {}

    def before(self, request: Any) -> str:
        """The label of ``request.path_info`` under the urlconf in force now."""
        path = request.path_info
        urlconf = getattr(request, "urlconf", None) or get_urlconf()
        key = (urlconf, path)
        cacheable = True
        try:
            return self._by_path[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable urlconf object: resolve without caching
            cacheable = False
        try:
            label = self.label(resolve(path, urlconf).route)
        except Resolver404:
            label = sc.ROUTE_UNMATCHED
        except Exception:  # a broken urlconf: Django reports it; the end of the request corrects
            return sc.ROUTE_UNMATCHED
        if cacheable:
            cache = self._by_path
            if len(cache) >= self.max_paths:
                try:  # evict the oldest entry; a concurrent eviction is harmless
                    del cache[next(iter(cache))]
                except (KeyError, StopIteration, RuntimeError):
                    pass
            cache[key] = label
        return label

    def after(self, request: Any, current: str) -> str:
        """The label of the pattern Django matched, or ``current`` when it matched none."""
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        if not isinstance(route, str):
            return current
        return self.label(route)

    def label(self, route: str | None) -> str:
        if route is None:
            return sc.ROUTE_UNMATCHED
        try:
            return self._labels[route]
        except KeyError:
            pass
        label = route_label(route)
        if len(self._labels) < _MAX_ROUTES:
            self._labels[route] = label
        return label


def route_label(route: str) -> str:
    """``resolver_match.route`` as a label: a leading slash, regular expressions made readable.

    ``path()`` routes are kept as written (``api/users/<int:user_id>``). For ``re_path()`` the
    ``^``/``$`` anchors go, each named group becomes ``<name>`` and escaped punctuation is
    unescaped: ``^archive/(?P<year>[0-9]{4})/$`` -> ``/archive/<year>/``.
    """
    if route.startswith("^"):
        route = route[1:]
    if "(" in route or "\\" in route or route.endswith("$"):
        route = _readable_regex(route)
    return route if route.startswith("/") else "/" + route


def _readable_regex(route: str) -> str:
    if route.endswith("\\Z"):
        route = route[:-2]
    elif route.endswith("$") and not route.endswith("\\$"):
        route = route[:-1]
    out: list[str] = []
    i, n = 0, len(route)
    while i < n:
        char = route[i]
        if char == "\\" and i + 1 < n:
            following = route[i + 1]
            out.append(following if not following.isalnum() else route[i : i + 2])
            i += 2
        elif route.startswith("(?P<", i):
            close = route.find(">", i + 4)
            if close < 0:
                out.append(route[i:])
                break
            out.append(f"<{route[i + 4 : close]}>")
            i = group_end(route, i)
        else:
            out.append(char)
            i += 1
    return "".join(out)
