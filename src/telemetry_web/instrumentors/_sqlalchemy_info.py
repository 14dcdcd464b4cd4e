"""What the SQLAlchemy instrumentor keeps per engine and per pool: the span attributes and
names computed once from an engine's URL, and the pool gauges set only when a value changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import Pool, QueuePool

from .. import semconv as sc
from ..metrics._registry import Metric

__all__ = ["EngineInfo", "PoolGauges", "defining", "pool_classes"]

_BACKSLASH_DIALECTS = frozenset({"mysql", "mariadb"})


class EngineInfo:
    """What one engine's spans and metric labels share, computed once."""

    __slots__ = ("attributes", "backslashes", "namespace", "pool_name", "span_names", "system")

    def __init__(self, engine: Engine) -> None:
        url = engine.url
        self.system: str = engine.dialect.name
        self.namespace: str | None = (
            url.database if url.database not in (None, "", ":memory:") else None
        )
        self.backslashes = self.system in _BACKSLASH_DIALECTS
        attributes: dict[str, Any] = {sc.ATTR_DB_SYSTEM: self.system}
        if self.namespace:
            attributes[sc.ATTR_DB_NAMESPACE] = self.namespace
        if url.host:
            attributes[sc.ATTR_SERVER_ADDRESS] = url.host
            if url.port:
                attributes[sc.ATTR_SERVER_PORT] = url.port
        self.attributes = attributes
        named = getattr(engine.pool, "_orig_logging_name", None)
        self.pool_name: str = (
            named
            or URL.create(
                self.system, host=url.host, port=url.port, database=url.database
            ).render_as_string()
        )
        self.span_names: dict[str, str] = {}

    def span_name(self, operation: str) -> str:
        name = self.span_names.get(operation)
        if name is None:
            name = f"{operation} {self.namespace}" if self.namespace else operation
            self.span_names[operation] = name
        return name


class PoolGauges:
    """The used/idle/overflow children of one pool label; a value is set only when it changed."""

    __slots__ = ("children", "count", "last")

    def __init__(self, gauge: Metric, info: EngineInfo) -> None:
        self.children = tuple(
            gauge.labels(info.system, info.pool_name, state) for state in sc.DB_CONNECTION_STATES
        )
        self.last = [0, 0, 0]
        self.count = 0  # checked-out connections, for pools that do not count them

    def refresh(self, pool: Pool, delta: int) -> None:
        if isinstance(pool, QueuePool):
            values = (max(pool.checkedout(), 0), pool.checkedin(), max(pool.overflow(), 0))
        else:  # NullPool, StaticPool, SingletonThreadPool: only what we counted ourselves
            self.count = max(self.count + delta, 0)
            values = (self.count, 0, 0)
        last = self.last
        for index, value in enumerate(values):
            if value != last[index]:
                last[index] = value
                self.children[index].set(value)


def pool_classes() -> list[type]:
    """``Pool`` and every subclass of it loaded now."""
    found: list[type] = []
    pending: list[type] = [Pool]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


def defining(cls: type, attribute: str) -> type | None:
    """The class of ``cls``'s MRO whose own namespace holds ``attribute``."""
    return next((c for c in cls.__mro__ if attribute in vars(c)), None)
