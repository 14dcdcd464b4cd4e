"""Database, cache and outbound HTTP client instrumentors: spans under the request span,
metrics, logs.

Example::

    from telemetry_web.instrumentors import (
        HttpxInstrumentor, RedisInstrumentor, SQLAlchemyInstrumentor,
    )

    SQLAlchemyInstrumentor(telemetry=telemetry).instrument()   # every engine
    RedisInstrumentor(telemetry=telemetry).instrument()        # every client
    HttpxInstrumentor(telemetry=telemetry).instrument(client=client)   # outbound HTTP

Each instrumentor lives in the module named after its library (``sqlalchemy``, ``redis``,
``httpx``, ``requests``, as the extras are) and imports that library only when it is first
used: a missing one raises :class:`~telemetry_web.MissingExtraError` naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .httpx import HttpxInstrumentor
    from .redis import RedisInstrumentor
    from .requests import RequestsInstrumentor
    from .sqlalchemy import SQLAlchemyInstrumentor

__all__ = [
    "HttpxInstrumentor",
    "RedisInstrumentor",
    "RequestsInstrumentor",
    "SQLAlchemyInstrumentor",
]

_LAZY = {
    "HttpxInstrumentor": ".httpx",
    "RedisInstrumentor": ".redis",
    "RequestsInstrumentor": ".requests",
    "SQLAlchemyInstrumentor": ".sqlalchemy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'telemetry_web.instrumentors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
