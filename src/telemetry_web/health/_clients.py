"""Checks of the app's own clients: a SQLAlchemy engine (``SELECT 1``) and a Redis client
(``PING``), sync or async, given as objects or built from a URL in the configuration; and
turning configuration targets and plain objects into checks.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import MissingExtraError
from ._checks import Check, DiskCheck, FunctionCheck, HttpCheck, ScriptCheck, TcpCheck
from ._state import Outcome

if TYPE_CHECKING:
    from ..config._model import HealthCheckTargetSettings

__all__ = ["RedisCheck", "SqlAlchemyCheck", "as_check", "build_check"]


class SqlAlchemyCheck(Check):
    """Healthy when ``SELECT 1`` succeeds on a fresh connection of ``engine``.

    ``engine`` is an ``Engine`` (run in a thread) or an ``AsyncEngine`` (awaited on the runner's
    loop: under ASGI the app's, which async drivers need), or a URL: an engine of its own,
    without a pool, is then created on first use, so every run opens a real connection.
    """

    kind = "sqlalchemy"

    def __init__(self, engine: Any) -> None:
        try:
            import sqlalchemy  # noqa: F401
        except ModuleNotFoundError:
            raise MissingExtraError(
                "a sqlalchemy health check", "sqlalchemy", "sqlalchemy"
            ) from None
        self._url = engine if isinstance(engine, str) else None
        self._engine: Any = None if isinstance(engine, str) else engine
        self._lock = threading.Lock()
        self.is_async = self._engine is not None and hasattr(self._engine, "sync_engine")

    def _own_engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                from sqlalchemy import create_engine
                from sqlalchemy.pool import NullPool

                self._engine = create_engine(self._url or "", poolclass=NullPool)
            return self._engine

    def run(self, timeout: float) -> Any:
        from sqlalchemy import text

        if self.is_async:
            return self._run_async(text("SELECT 1"))
        with self._own_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return Outcome(True)

    async def _run_async(self, statement: Any) -> Outcome:
        async with self._engine.connect() as connection:
            await connection.execute(statement)
        return Outcome(True)

    def describe(self) -> str:
        url: Any = self._engine.url if self._engine is not None else self._url
        try:
            from sqlalchemy.engine import make_url

            return str(make_url(url).render_as_string(hide_password=True))
        except Exception:
            return "sqlalchemy engine"

    def close(self) -> None:
        if self._url is not None and self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        if self._url is not None and self._engine is not None:
            self._engine.dispose(close=False)  # the parent's connections stay the parent's


class RedisCheck(Check):
    """Healthy when ``PING`` is answered by ``client`` (``redis.Redis``, run in a thread, or
    ``redis.asyncio.Redis``, awaited on the runner's loop), or by a client built from a URL."""

    kind = "redis"

    def __init__(self, client: Any) -> None:
        try:
            import redis  # noqa: F401
        except ModuleNotFoundError:
            raise MissingExtraError("a redis health check", "redis", "redis") from None
        self._url = client if isinstance(client, str) else None
        self._client: Any = None if isinstance(client, str) else client
        self._lock = threading.Lock()
        # redis.asyncio clients: ping() is a plain method returning execute_command's coroutine
        self.is_async = self._client is not None and inspect.iscoroutinefunction(
            getattr(self._client, "execute_command", None)
        )

    def _own_client(self, timeout: float) -> Any:
        with self._lock:
            if self._client is None:
                import redis
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                # One attempt per run: the thresholds are the retries, not the client.
                self._client = redis.Redis.from_url(
                    self._url or "",
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=Retry(NoBackoff(), 0),
                )
            return self._client

    def run(self, timeout: float) -> Any:
        if self.is_async:
            return self._run_async()
        return _pong(self._own_client(timeout).ping())

    async def _run_async(self) -> Outcome:
        return _pong(await self._client.ping())

    def describe(self) -> str:
        if self._url is not None:
            return _without_password(self._url)
        kwargs = getattr(getattr(self._client, "connection_pool", None), "connection_kwargs", {})
        if "path" in kwargs:
            return f"unix://{kwargs['path']}/{kwargs.get('db', 0)}"
        return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"

    def close(self) -> None:
        if self._url is not None and self._client is not None:
            self._client.close()
            self._client = None

    def after_fork(self) -> None:
        self._lock = threading.Lock()  # redis-py resets its own pools in a new process


def _pong(answer: object) -> Outcome:
    return Outcome(True) if answer else Outcome(False, f"PING answered {answer!r}")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def build_check(target: HealthCheckTargetSettings) -> Check:
    """The check a ``health.checks[].check`` configuration describes."""
    kind = target.type
    if kind == "tcp":
        return TcpCheck(target.host or "", target.port or 0)
    if kind == "http":
        return HttpCheck(
            target.url or "",
            method=target.method,
            expected_status=target.expected_status,
            headers=target.headers,
        )
    if kind == "script":
        return ScriptCheck(target.command or "")
    if kind == "disk":
        return DiskCheck(
            target.path or "", min_free=target.min_free, min_free_percent=target.min_free_percent
        )
    if kind == "sqlalchemy":
        return SqlAlchemyCheck(target.url or "")
    if kind == "redis":
        return RedisCheck(target.url or "")
    if kind == "function":
        return FunctionCheck(import_function(target.target or ""))
    raise ValueError(f"unknown health check type {kind!r}")  # a bug: the model allows no other


def import_function(reference: str) -> Any:
    """``package.module:function`` (or ``package.module:object.method``)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected 'module:function', got {reference!r}")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    if not callable(value):
        raise ValueError(f"{reference} is not callable")
    return value


def as_check(value: Any) -> Check:
    """A :class:`Check` for a check, a SQLAlchemy engine, a Redis client or a function."""
    if isinstance(value, Check):
        return value
    module = type(value).__module__ or ""
    if module.startswith("sqlalchemy") and hasattr(value, "connect") and hasattr(value, "url"):
        return SqlAlchemyCheck(value)
    if module.startswith("redis") and hasattr(value, "ping"):
        return RedisCheck(value)
    if callable(value):
        return FunctionCheck(value)
    raise TypeError(
        "a health check is a telemetry_web.health.Check, a SQLAlchemy engine, a Redis client "
        f"or a function, got {type(value).__name__}"
    )
