"""What every source of route labels provides (kept apart so the framework modules share it)."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

__all__ = ["CACHE_SIZE", "CallableSource", "RouteResolver", "RouteSource"]

RouteResolver = Callable[[dict[str, Any]], "str | None"]
# Entries per cache of resolved paths: cleared when full, so scanners cannot grow memory.
CACHE_SIZE = 4096


class RouteSource(abc.ABC):
    """The route labels of one app.

    ``before(scope)`` runs before the app, on the request path: it returns the label (None:
    unmatched) and a token for ``after``. ``after(scope, token)`` runs once the app returned and
    reads what the framework recorded in the scope; it returns the label that replaces the one
    from ``before``, or None to keep it. A source is also a plain resolver: ``source(scope)``.
    """

    @abc.abstractmethod
    def before(self, scope: Any) -> tuple[str | None, Any]: ...

    def after(self, scope: Any, token: Any) -> str | None:
        return None

    def __call__(self, scope: dict[str, Any]) -> str | None:
        return self.before(scope)[0]


class CallableSource(RouteSource):
    """A plain ``scope -> template or None`` resolver (``route_resolver=``, a plugin's)."""

    def __init__(self, resolver: RouteResolver) -> None:
        self.resolver = resolver

    def before(self, scope: Any) -> tuple[str | None, Any]:
        return self.resolver(dict(scope)), None

    def __repr__(self) -> str:
        return f"CallableSource({self.resolver!r})"
