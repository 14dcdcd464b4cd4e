"""Route labels of Litestar and Quart apps.

Litestar records the matched route's template in ``scope["path_template"]`` (``/users/{id}``),
which wins after the app ran; before it, the app's own cached router lookup
(``asgi_router.handle_routing``) gives the same template, the path's template for a 405 and
``/<mount>/{path}`` for a mounted ASGI app. Quart keeps the matched werkzeug rule on its request
object, not in the scope, so its label is matched before the app runs with the app's own
``url_map`` (``/users/<int:user_id>``, as the Flask adapter labels Flask apps); a strict-slash
redirect is unmatched, a 405 keeps the rule its path matched.
"""

from __future__ import annotations

from typing import Any

from ._base import CACHE_SIZE, RouteSource

__all__ = ["LitestarRoutes", "QuartRoutes", "framework_source"]


def framework_source(app: Any) -> RouteSource | None:
    """A source for a Litestar or Quart application object, else None."""
    module = type(app).__module__
    if module.startswith("litestar") and hasattr(app, "asgi_router"):
        return LitestarRoutes(app)
    if module.startswith("quart") and hasattr(app, "url_map"):
        return QuartRoutes(app)
    return None


class LitestarRoutes(RouteSource):
    """Labels from a Litestar app's router (``scope["path_template"]`` once routed)."""

    def __init__(self, app: Any) -> None:
        from litestar.exceptions import MethodNotAllowedException
        from litestar.utils import normalize_path

        self.router = app.asgi_router
        self._normalize = normalize_path
        self._not_allowed = MethodNotAllowedException
        self._cache: dict[tuple[str, str, str], str | None] = {}

    def before(self, scope: Any) -> tuple[str | None, Any]:
        path, root_path = scope["path"], scope.get("root_path", "")
        key = (scope.get("method", ""), path, root_path)
        try:
            return self._cache[key], True
        except KeyError:
            pass
        if root_path:  # as Litestar's router does
            path = path.split(root_path, maxsplit=1)[-1]
        try:
            template = self._template(self._normalize(path), scope.get("method"))
        except Exception:  # NotFoundException, an invalid path parameter: unmatched
            template = None
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = template
        return template, True

    def _template(self, path: str, method: str | None) -> str | None:
        try:
            template: str = self.router.handle_routing(path=path, method=method)[4]
        except self._not_allowed:  # a 405: the template of the path, whatever the method
            from litestar._asgi.routing_trie.traversal import traverse_route_map

            node = traverse_route_map(root_node=self.router.root_route_map_node, path=path)[0]
            template = node.path_template
        if template:
            return template
        # A mounted ASGI app: Litestar records no template, the mount's path is the label.
        regex = getattr(self.router, "_mount_paths_regex", None)
        match = regex.match(path) if regex is not None else None
        return path[: match.end()].rstrip("/") + "/{path}" if match else None

    def after(self, scope: Any, token: Any) -> str | None:
        template = scope.get("path_template")
        if isinstance(template, str) and template and "route_handler" in scope:
            return template
        return None


class QuartRoutes(RouteSource):
    """Labels from a Quart app's ``url_map`` (werkzeug rules), matched before the app runs."""

    def __init__(self, app: Any) -> None:
        from werkzeug.exceptions import MethodNotAllowed

        self.app = app
        self._not_allowed = MethodNotAllowed
        self._cache: dict[tuple[str, str, str, str, str], str | None] = {}

    def before(self, scope: Any) -> tuple[str | None, Any]:
        scheme = scope.get("scheme", "http")
        host = _normalise_host(scheme, _host_header(scope).lower())
        method = scope.get("method", "GET")
        key = (method, host, scheme, scope.get("root_path", ""), scope["path"])
        try:
            return self._cache[key], None
        except KeyError:
            pass
        try:
            template = self._match(scope, scheme, host, method)
        except Exception:  # NotFound, RequestRedirect (strict slashes), a bad host
            template = None
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[key] = template
        return template, None

    def _match(self, scope: Any, scheme: str, host: str, method: str) -> str | None:
        """The rule Quart's ``create_url_adapter`` + ``match`` would find for this request."""
        app, url_map = self.app, self.app.url_map
        root_path, path = scope.get("root_path", ""), scope["path"]
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :] or "/"
        server_name = app.config.get("SERVER_NAME")
        configured = _normalise_host(scheme, server_name.lower()) if server_name else host
        subdomain = None if app.subdomain_matching else (url_map.default_subdomain or None)
        if subdomain is None and not url_map.host_matching:
            parts, config_parts = host.split("."), configured.split(".")
            offset = -len(config_parts)
            if parts[offset:] != config_parts:
                return None
            subdomain = ".".join(filter(None, parts[:offset]))
        adapter = url_map.bind(configured, root_path, subdomain, scheme, method, path)
        try:
            rule = adapter.match(return_rule=True)[0]
        except self._not_allowed as exc:  # a 405 belongs to the rule its path matched
            if not exc.valid_methods:
                return None
            rule = adapter.match(None, next(iter(exc.valid_methods)), True)[0]
        return str(rule.rule)


def _host_header(scope: Any) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"host":
            return value.decode("latin-1")  # type: ignore[no-any-return]
    server = scope.get("server")
    return f"{server[0]}:{server[1]}" if server and server[1] else (server[0] if server else "")


def _normalise_host(scheme: str, host: str) -> str:
    if scheme in ("http", "ws") and host.endswith(":80"):
        return host[:-3]
    if scheme in ("https", "wss") and host.endswith(":443"):
        return host[:-4]
    return host
