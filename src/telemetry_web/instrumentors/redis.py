"""Redis (redis-py 5+: ``redis.Redis``, ``redis.asyncio.Redis``, their pipelines and
transactions, and the cluster clients): a span per command, one per pipeline, and metrics.

Every client, those created before this call included::

    from telemetry_web.instrumentors import RedisInstrumentor

    RedisInstrumentor(telemetry=telemetry).instrument()

Only some clients (pipelines made from them included)::

    RedisInstrumentor(telemetry=telemetry).instrument(client=[cache, async_cache])

What is recorded:

- a CLIENT span per command, child of the current span (the request's), named after the
  command: ``db.system`` (``redis``), ``db.operation.name``, ``db.namespace`` (the database
  index), ``server.address``, ``server.port``, ``db.redis.key_count`` and ``db.query.text``
  (``SET ? ?``); with no current span there is none (``root_spans=True`` starts a trace);
- one span per pipeline, ``PIPELINE`` or ``MULTI`` (a transaction), with the command names in
  ``db.redis.commands`` and their number in ``db.operation.batch.size``; ``WATCH`` and the
  commands run while watching are spans of their own;
- ``db_client_operation_duration_seconds{db_system="redis",operation,status}``, where a
  pipeline's operation is ``PIPELINE`` or ``MULTI`` and ``status`` is ``error`` when the call
  raised or a result of ``execute(raise_on_error=False)`` is an error.

Argument values (keys and values: user data) appear in ``db.query.text`` only with
``record_arguments=True``; even then credentials are ``REDACTED`` (the arguments of ``AUTH``,
``HELLO``, ``MIGRATE``, ``ACL``, ``CONFIG SET``; the value after a key or field whose name
names a credential, ``SET api_token …``, ``HSET user:1 password …``) and card numbers and the
like are scrubbed. Cluster clients are wrapped the same way (not yet tested against a
real cluster).
"""

from __future__ import annotations

import inspect
import time
import warnings
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Status, StatusCode

from .. import semconv as sc
from .._redaction import REDACTED, NameRule, scrub_text
from ._base import BaseInstrumentor, Patch, Switch, end_span, missing, require_version, wrap

try:
    import redis
    import redis.asyncio.client
    import redis.asyncio.cluster
    import redis.client
    import redis.cluster
except ModuleNotFoundError:
    raise missing("redis") from None

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .._engine import Telemetry

__all__ = ["RedisInstrumentor"]

require_version("redis", redis.__version__)

_perf = time.perf_counter
_SYSTEM = "redis"
_MAX_ARGUMENT = 128  # characters of one recorded argument
_MAX_TEXT = 2048  # characters of db.query.text
_MAX_COMMANDS = 128  # command names kept in db.redis.commands
# Commands whose arguments are (or carry) credentials: none recorded.
_CREDENTIAL_COMMANDS = frozenset({"AUTH", "HELLO", "MIGRATE", "ACL SETUSER", "CONFIG SET", "ACL"})
_SENSITIVE_NAME = NameRule()

# How many keys a command names, for db.redis.key_count (commands not listed: the first argument).
_ALL_KEYS = frozenset({
    "DEL", "EXISTS", "MGET", "PFCOUNT", "SDIFF", "SINTER", "SUNION", "TOUCH", "UNLINK", "WATCH",
})  # fmt: skip
_KEY_VALUE_PAIRS = frozenset({"MSET", "MSETNX"})
_NUMKEYS_AT_2 = frozenset({"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"})
_NO_KEYS = frozenset({
    "AUTH", "BGSAVE", "DBSIZE", "DISCARD", "ECHO", "EXEC", "FLUSHALL", "FLUSHDB", "HELLO", "INFO",
    "KEYS", "LASTSAVE", "MULTI", "PING", "PUBLISH", "QUIT", "RANDOMKEY", "SAVE", "SCAN", "SELECT",
    "SWAPDB", "TIME", "UNWATCH", "WAIT",
})  # fmt: skip


def _key_count(name: str, args: tuple[Any, ...]) -> int:
    given = len(args) - 1
    if name in _ALL_KEYS:
        return given
    if name in _KEY_VALUE_PAIRS:
        return given // 2
    if name in _NUMKEYS_AT_2:
        try:
            return int(args[2])
        except (IndexError, TypeError, ValueError):
            return 0
    if name in _NO_KEYS or " " in name:  # subcommands: CLIENT SETNAME, CONFIG GET, ...
        return 0
    return 1 if given else 0


def _name(command: Any) -> str:
    if isinstance(command, bytes):
        command = command.decode("utf-8", "replace")
    return str(command).upper()[:64]


def _argument(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_ARGUMENT else text[: _MAX_ARGUMENT - 3] + "..."


def _arguments(name: str, args: tuple[Any, ...]) -> list[str]:
    """The recorded arguments: credentials as ``REDACTED`` (every argument of ``AUTH`` and the
    like; the value after a key or field the name rule calls sensitive: ``SET api_token …``,
    ``HSET user:1 password …``), card numbers and the like scrubbed."""
    if name in _CREDENTIAL_COMMANDS:
        return [REDACTED] * len(args)
    texts = [_argument(a) for a in args]
    for index, text in enumerate(texts[:-1]):
        if _SENSITIVE_NAME(text):
            texts[index + 1] = REDACTED
    return [scrub_text(t) if t is not REDACTED else t for t in texts]


def _stack(pipeline: Any) -> list[tuple[Any, ...]]:
    """The argument tuples queued in a pipeline (plain, asyncio or cluster)."""
    stack = getattr(pipeline, "command_stack", None)
    if stack is None:
        strategy = getattr(pipeline, "_execution_strategy", None)
        stack = getattr(strategy, "command_queue", None) or ()
    return [getattr(entry, "args", None) or entry[0] for entry in stack]


class RedisInstrumentor(BaseInstrumentor):
    """Spans and metrics for redis-py clients, into one Telemetry.

    Args:
        telemetry: where spans and metrics go.
        record_arguments: put argument values (keys, values) in ``db.query.text``; they are
            user data, so off by default (the text is then ``SET ? ?``).
        root_spans: start a trace for commands run outside any span (default: metrics only).
    """

    token = "redis"
    scope = sc.INSTRUMENTATION_REDIS

    def __init__(
        self, *, telemetry: Telemetry, record_arguments: bool = False, root_spans: bool = False
    ) -> None:
        super().__init__(telemetry=telemetry, root_spans=root_spans)
        self.record_arguments = record_arguments
        self._clients: weakref.WeakKeyDictionary[Any, list[Patch]] = weakref.WeakKeyDictionary()
        self._servers: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._texts: dict[tuple[str, int], str] = {}

    # --- public API -----------------------------------------------------------------------------

    def instrument(self, *, client: Any | Iterable[Any] | None = None) -> None:
        """Instrument every client (``client=None``), or only the given ones.

        Idempotent: instrumenting what is already instrumented warns and does nothing. With
        every client instrumented, naming one adds nothing.
        """
        with self._lock:
            if client is None:
                if self._claim_global():
                    for target, attribute, kind in _global_targets():
                        self._wrap(target, attribute, self._wrapper(kind, async_=_is_async(
                            vars(target)[attribute])))  # fmt: skip
                return
            for one in _clients(client):
                if self._global or one in self._clients:
                    warnings.warn(
                        f"{one!r} is already instrumented; nothing more to do",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    continue
                switch = Switch()
                is_async = _is_async(one.execute_command)
                self._clients[one] = [
                    wrap(one, "execute_command", self._wrapper("command", is_async), switch),
                    wrap(one, "pipeline", self._pipeline_factory(is_async, switch), switch),
                ]

    def uninstrument(self, *, client: Any | Iterable[Any] | None = None) -> None:
        """Undo :meth:`instrument`: everything (``client=None``), or the given clients."""
        with self._lock:
            if client is None:
                if not self._global and not self._clients:
                    warnings.warn(
                        "RedisInstrumentor.uninstrument(): nothing is instrumented",
                        RuntimeWarning,
                        stacklevel=3,
                    )
                if self._release_global():
                    self._unwrap_all(self._patches)
                for one in list(self._clients):
                    self._unwrap_all(self._clients.pop(one))
                return
            for one in _clients(client):
                patches = self._clients.pop(one, None)
                if patches is not None:
                    self._unwrap_all(patches)

    # --- wrappers -------------------------------------------------------------------------------

    def _wrapper(self, kind: str, async_: bool) -> Any:
        if kind == "command":
            return self._traced_execute_command_async if async_ else self._traced_execute_command
        return self._traced_pipeline_execute_async if async_ else self._traced_pipeline_execute

    def _pipeline_factory(self, is_async: bool, switch: Switch) -> Any:
        """``client.pipeline()`` of an instrumented client: the pipeline is instrumented too."""

        def _traced_pipeline(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            pipeline = wrapped(*args, **kwargs)
            try:
                wrap(pipeline, "execute", self._wrapper("pipeline", is_async), switch)
                if hasattr(pipeline, "immediate_execute_command"):
                    wrap(
                        pipeline,
                        "immediate_execute_command",
                        self._wrapper("command", is_async),
                        switch,
                    )
            except Exception as exc:
                self.internal_error("pipeline", exc)
            return pipeline

        return _traced_pipeline

    def _traced_execute_command(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = self._begin_command(instance, args)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._end(started, exc, None)
            raise
        self._end(started, None, None)
        return result

    async def _traced_execute_command_async(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = self._begin_command(instance, args)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._end(started, exc, None)
            raise
        self._end(started, None, None)
        return result

    def _traced_pipeline_execute(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = self._begin_pipeline(instance)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            self._end(started, exc, None)
            raise
        self._end(started, None, result)
        return result

    async def _traced_pipeline_execute_async(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = self._begin_pipeline(instance)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            self._end(started, exc, None)
            raise
        self._end(started, None, result)
        return result

    # --- recording ------------------------------------------------------------------------------

    def _server(self, client: Any) -> dict[str, Any]:
        """db.system, db.namespace and the server address of a client (or pipeline)."""
        pool = getattr(client, "connection_pool", None)
        key = pool if pool is not None else type(client)
        attributes = self._servers.get(key)
        if attributes is None:
            attributes = {sc.ATTR_DB_SYSTEM: _SYSTEM}
            connection = getattr(pool, "connection_kwargs", None) or {}
            attributes[sc.ATTR_DB_NAMESPACE] = str(connection.get("db", 0))
            if connection.get("path"):
                attributes[sc.ATTR_SERVER_ADDRESS] = str(connection["path"])
            elif connection.get("host"):
                attributes[sc.ATTR_SERVER_ADDRESS] = str(connection["host"])
                if connection.get("port"):
                    attributes[sc.ATTR_SERVER_PORT] = int(connection["port"])
            self._servers[key] = attributes
        return attributes

    def _text(self, name: str, args: tuple[Any, ...]) -> str:
        if self.record_arguments:
            text = " ".join([name, *_arguments(name, args[1:])])
            return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."
        key = (name, len(args))
        cached = self._texts.get(key)
        if cached is None:
            cached = " ".join([name] + ["?"] * (len(args) - 1))[:_MAX_TEXT]
            if len(self._texts) < 4096:
                self._texts[key] = cached
        return cached

    def _begin_command(
        self, client: Any, args: tuple[Any, ...]
    ) -> tuple[float, Span | None, str] | None:
        try:
            name = _name(args[0])
            attributes = dict(self._server(client))
            attributes[sc.ATTR_DB_OPERATION] = name
            attributes[sc.ATTR_DB_REDIS_KEY_COUNT] = _key_count(name, args)
            attributes[sc.ATTR_DB_QUERY_TEXT] = self._text(name, args)
            return _perf(), self.start_span(name, attributes), name
        except Exception as exc:
            self.internal_error("command", exc)
            return None

    def _begin_pipeline(self, pipeline: Any) -> tuple[float, Span | None, str] | None:
        try:
            stack = _stack(pipeline)
            if not stack:
                return None  # nothing is sent
            name = "MULTI" if _is_transaction(pipeline) else "PIPELINE"
            attributes = dict(self._server(pipeline))
            attributes[sc.ATTR_DB_OPERATION] = name
            attributes[sc.ATTR_DB_BATCH_SIZE] = len(stack)
            attributes[sc.ATTR_DB_REDIS_COMMANDS] = [
                _name(args[0]) for args in stack[:_MAX_COMMANDS] if args
            ]
            if self.record_arguments:
                text = "\n".join(self._text(_name(args[0]), args) for args in stack if args)
                attributes[sc.ATTR_DB_QUERY_TEXT] = text[:_MAX_TEXT]
            return _perf(), self.start_span(name, attributes), name
        except Exception as exc:
            self.internal_error("pipeline", exc)
            return None

    def _end(
        self,
        started: tuple[float, Span | None, str] | None,
        exception: BaseException | None,
        results: Any,
    ) -> None:
        if started is None:
            return
        try:
            start, span, name = started
            duration = _perf() - start
            failed = exception is not None or (
                isinstance(results, list) and any(isinstance(r, Exception) for r in results)
            )
            status = sc.DB_STATUS_ERROR if failed else sc.DB_STATUS_OK
            self.duration.labels(_SYSTEM, name, status).observe(duration)
            if span is not None:
                if exception is None and failed:
                    first = next(r for r in results if isinstance(r, Exception))
                    span.set_attribute(sc.ATTR_ERROR_TYPE, type(first).__qualname__)
                    span.set_status(Status(StatusCode.ERROR, f"{type(first).__name__}: {first}"))
                end_span(span, exception)
        except Exception as exc:
            self.internal_error("end", exc)


def _is_transaction(pipeline: Any) -> bool:
    # Instance state only: `transaction` is also a method of every client.
    state = vars(pipeline)
    flag = state.get("is_transaction", state.get("transaction", state.get("_transaction")))
    return bool(flag) or bool(state.get("explicit_transaction"))


def _is_async(function: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(function, "__wrapped__", function))


def _clients(clients: Any) -> list[Any]:
    items = [clients] if hasattr(clients, "execute_command") else list(clients)
    for item in items:
        if not hasattr(item, "execute_command") or not hasattr(item, "pipeline"):
            raise TypeError(
                f"instrument(client=...) takes redis-py clients, got {type(item).__name__}"
            )
    return items


def _global_targets() -> list[tuple[type, str, str]]:
    """(class, attribute, kind) wrapped by ``instrument()``: each client type's command and
    pipeline entry points, those this redis-py defines."""
    targets: list[tuple[type, str, str]] = [
        (redis.client.Redis, "execute_command", "command"),
        (redis.client.Pipeline, "execute", "pipeline"),
        (redis.client.Pipeline, "immediate_execute_command", "command"),
        (redis.asyncio.client.Redis, "execute_command", "command"),
        (redis.asyncio.client.Pipeline, "execute", "pipeline"),
        (redis.asyncio.client.Pipeline, "immediate_execute_command", "command"),
    ]
    targets += [
        (redis.cluster.RedisCluster, "execute_command", "command"),
        (redis.cluster.ClusterPipeline, "execute", "pipeline"),
        (redis.asyncio.cluster.RedisCluster, "execute_command", "command"),
        (redis.asyncio.cluster.ClusterPipeline, "execute", "pipeline"),
    ]
    return [t for t in targets if t[1] in vars(t[0])]
