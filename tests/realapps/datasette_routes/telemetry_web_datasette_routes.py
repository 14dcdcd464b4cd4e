"""Route templates for Datasette, whose router matches regular expressions, not templates.

Datasette (``datasette.app.DatasetteRouter``) tries ``(compiled regex, view)`` pairs in order
and serves the first that matches the path. A Datasette user reading ``http_requests_total``
expects the shape of what was asked for, ``/{database}/{table}``, not the regex and never the
concrete ``/fixtures/books``. :func:`template_for_pattern` turns a route regex into that
template: each named group ``(?P<name>...)`` becomes ``{name}``, an optional unnamed group
``(...)?`` is kept in brackets, anchors go and escaped punctuation is unescaped::

    /(?P<database>[^\\/\\.]+)/(?P<table>[^\\/\\.]+)(\\.(?P<format>\\w+))?$
    -> /{database}/{table}[.{format}]

:func:`resolver_for` is the ``telemetry_web.route_resolvers`` entry point: given the ASGI app
telemetry-web instruments, it finds the live ``DatasetteRouter`` inside Datasette's wrappers and
returns a resolver that matches its routes exactly as it does (raw path, ``base_url`` removed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from telemetry_web._regex import group_end

__all__ = ["find_router", "resolver_for", "template_for_pattern"]

_MAX_DEPTH = 12


def resolver_for(app: Any) -> Callable[[dict[str, Any]], str | None] | None:
    """A ``scope -> template or None`` resolver for a Datasette ASGI app, else None."""
    router = find_router(app)
    if router is None:
        return None
    from datasette.utils import resolve_routes

    templates: dict[str, str] = {}

    def resolve(scope: dict[str, Any]) -> str | None:
        path = _routed_path(scope, router.ds.setting("base_url"))
        match, _view = resolve_routes(router.routes, path)
        if match is None:
            return None
        pattern = match.re.pattern
        template = templates.get(pattern)
        if template is None:
            template = templates[pattern] = template_for_pattern(pattern)
        return template

    return resolve


def find_router(app: Any) -> Any:
    """The ``DatasetteRouter`` inside Datasette's ASGI wrappers (attributes and closures)."""
    try:
        from datasette.app import DatasetteRouter
    except ImportError:
        return None
    seen: set[int] = set()
    for obj in _reachable(app, 0, seen):
        if isinstance(obj, DatasetteRouter):
            return obj
    return None


def _reachable(obj: Any, depth: int, seen: set[int]) -> Iterator[Any]:
    if depth > _MAX_DEPTH or id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    for name in ("app", "asgi", "__wrapped__"):
        inner = getattr(obj, name, None)
        if inner is not None and not isinstance(inner, type):
            yield from _reachable(inner, depth + 1, seen)
    for cell in getattr(obj, "__closure__", None) or ():
        try:
            inner = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if callable(inner) and not isinstance(inner, type):
            yield from _reachable(inner, depth + 1, seen)


def _routed_path(scope: dict[str, Any], base_url: str) -> str:
    """The path as ``DatasetteRouter`` routes it: the raw path, query and ``base_url`` removed."""
    raw = scope.get("raw_path")
    path: str = raw.decode("ascii", "replace") if raw else scope.get("path", "/")
    path = path.partition("?")[0]
    if base_url != "/" and path.startswith(base_url):
        path = "/" + path[len(base_url) :]
    return path


def template_for_pattern(pattern: str) -> str:
    """``/(?P<database>[^/]+)(\\.(?P<format>\\w+))?$`` -> ``/{database}[.{format}]``."""
    body = pattern
    if body.startswith("^"):
        body = body[1:]
    if body.endswith("\\Z"):
        body = body[:-2]
    elif body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    return _render(body)


def _render(body: str) -> str:
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        char = body[i]
        if char == "\\" and i + 1 < n:
            following = body[i + 1]
            out.append(following if not following.isalnum() else body[i : i + 2])
            i += 2
        elif char == "(":
            end = group_end(body, i)
            inner = body[i + 1 : end - 1]
            optional = end < n and body[end] == "?"
            named = re.match(r"\?P<(\w+)>", inner)
            if named:
                out.append("{" + named.group(1) + "}")
            else:
                inner = inner[2:] if inner.startswith("?:") else inner
                rendered = _render(inner)
                out.append(f"[{rendered}]" if optional else rendered)
            i = end + 1 if optional else end
        else:
            out.append(char)
            i += 1
    return "".join(out)
