"""SQLAlchemy (1.4, 2.x; sync engines and ``create_async_engine``): a span per statement,
operation-duration metrics, connection-pool gauges and a slow-query log.

Every engine, those created before this call included::

    from telemetry_web.instrumentors import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor(telemetry=telemetry).instrument()

Only some engines (an ``AsyncEngine`` is instrumented through its sync engine, once)::

    SQLAlchemyInstrumentor(telemetry=telemetry).instrument(engine=[engine, async_engine])

What is recorded for each statement:

- a CLIENT span, child of the current span (the request's): ``db.system``, ``db.namespace``,
  ``db.operation.name``, ``db.query.text`` (literals replaced by ``?``), ``server.address``,
  ``server.port``; failures set ``error.type``, an exception event and an error status. With
  no current span there is none (``root_spans=True`` starts a trace instead);
- ``db_client_operation_duration_seconds{db_system,operation,status}``;
- a ``slow query`` log line (warning, logger ``telemetry_web.sqlalchemy``) with the statement,
  ``duration_ms`` and ``trace_id`` when it took ``slow_query_threshold`` seconds or more.

Bound parameters are recorded (``db.query.parameter.<name>`` attributes, ``parameters`` in the
slow-query line) only with ``record_parameters=True``.

Without it, instrumented engines get SQLAlchemy's own ``hide_parameters=True`` (restored by
``uninstrument``), so its error messages carry no ``[parameters: …]`` wherever they end up,
the app's own logs and error trackers included. That switch changes only text: what
SQLAlchemy puts in exception messages and in its ``echo`` log (which then says "SQL parameters
hidden"); statements run exactly as before. With ``record_parameters=True`` engines are left
as they are. Either way, exception messages and stack traces on spans and log lines are
scrubbed (``[parameters: …]``, the literals of ``[SQL: …]``, PostgreSQL's ``LINE n:`` echo and
``DETAIL`` values: ``telemetry_web._redaction``).

Each checkout from an engine's pool is timed in ``db_client_connection_wait_time_seconds``;
one that took ``checkout_event_threshold`` (1 ms) or more, waiting for a free connection or
opening one, adds a ``db.client.connection.checkout`` event (pool name, wait time) to the
current span. ``db_client_connections{db_system,pool,state}`` shows the pool's ``used``,
``idle`` and ``overflow`` connections. The pool label is the engine's URL without credentials,
or its ``pool_logging_name``: give that to engines that share a URL to keep their pools apart.
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import get_current_span

from .. import semconv as sc
from ._base import (
    BaseInstrumentor,
    Patch,
    end_span,
    missing,
    require_version,
    wrap,
)
from ._sql import parameter_attributes, parameters_for_log, sanitize

try:
    import sqlalchemy
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool
except ModuleNotFoundError:
    raise missing("sqlalchemy") from None

from ._sqlalchemy_info import EngineInfo, PoolGauges, defining, pool_classes

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from sqlalchemy.engine import Connection, ExceptionContext, ExecutionContext
    from sqlalchemy.ext.asyncio import AsyncEngine

    from .._engine import Telemetry

__all__ = ["SQLAlchemyInstrumentor"]

require_version("sqlalchemy", sqlalchemy.__version__)

_perf = time.perf_counter
_EVENTS = ("before_cursor_execute", "after_cursor_execute", "handle_error")


class SQLAlchemyInstrumentor(BaseInstrumentor):
    """Spans, metrics and slow-query lines for SQLAlchemy engines, into one Telemetry.

    Args:
        telemetry: where spans, metrics and log lines go.
        slow_query_threshold: seconds from which a statement gets a ``slow query`` log line;
            None for never.
        checkout_event_threshold: seconds from which a pool checkout (a wait for a free
            connection, a new connection) adds an event to the current span; 0 for every
            checkout, None for never. Every checkout is timed in the wait-time histogram.
        record_parameters: record bound parameter values on spans and slow-query lines (they
            may hold personal data; off by default).
        root_spans: start a trace for statements run outside any span (default: metrics only).
    """

    token = "sqlalchemy"
    scope = sc.INSTRUMENTATION_SQLALCHEMY

    def __init__(
        self,
        *,
        telemetry: Telemetry,
        slow_query_threshold: float | None = 0.5,
        checkout_event_threshold: float | None = 0.001,
        record_parameters: bool = False,
        root_spans: bool = False,
    ) -> None:
        for name, value in (
            ("slow_query_threshold", slow_query_threshold),
            ("checkout_event_threshold", checkout_event_threshold),
        ):
            if value is not None and not value >= 0:
                raise ValueError(
                    f"{name}: expected a number of seconds >= 0 or None, got {value!r}"
                )
        super().__init__(telemetry=telemetry, root_spans=root_spans)
        self.slow_query_threshold = slow_query_threshold
        self.checkout_event_threshold = checkout_event_threshold
        self.record_parameters = record_parameters
        self.connections = (
            telemetry.metrics.builder("gauge", sc.DB_CLIENT_CONNECTIONS)
            .with_description("Connections of a database client pool, by state.")
            .with_label_keys(sc.LABEL_DB_SYSTEM, sc.LABEL_DB_POOL, sc.LABEL_DB_CONNECTION_STATE)
            .register()
        )
        self.wait = (
            telemetry.metrics.builder("histogram", sc.DB_CLIENT_CONNECTION_WAIT)
            .with_description("Time to check a connection out of a database client pool.")
            .with_label_keys(sc.LABEL_DB_SYSTEM, sc.LABEL_DB_POOL)
            .with_buckets(sc.DB_DURATION_BUCKETS)
            .register()
        )
        self._slow_log = telemetry.get_logger(sc.INSTRUMENTATION_SQLALCHEMY)
        self._engines: weakref.WeakKeyDictionary[Engine, list[Patch]] = weakref.WeakKeyDictionary()
        self._infos: weakref.WeakKeyDictionary[Engine, EngineInfo] = weakref.WeakKeyDictionary()
        self._pools: weakref.WeakKeyDictionary[Pool, PoolGauges] = weakref.WeakKeyDictionary()
        self._gauges: dict[tuple[str, str], PoolGauges] = {}
        # Engines given hide_parameters=True, with the value they had.
        self._hidden: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()
        self._return_patches: list[Patch] = []
        self._info_lock = threading.Lock()
        # Where a statement's start is kept on its ExecutionContext between the before and after
        # events: one key per instrumentor, so two Telemetry objects never share one.
        self._state = f"_telemetry_web_statement_{id(self):x}"

    # --- public API -----------------------------------------------------------------------------

    def instrument(
        self, *, engine: Engine | AsyncEngine | Iterable[Engine | AsyncEngine] | None = None
    ) -> None:
        """Instrument every engine (``engine=None``), or only the given ones.

        Idempotent: instrumenting what is already instrumented warns and does nothing. With
        every engine instrumented, naming one adds nothing.
        """
        with self._lock:
            if engine is None:
                if not self._claim_global():
                    return
                for sync_engine in list(self._engines):  # now covered by the class-level hooks
                    self._detach(sync_engine)
                self._listen(Engine)
                self._wrap(Engine, "raw_connection", self._traced_raw_connection)
                self._ensure_return_patch()
                return
            for sync_engine in _sync_engines(engine):
                if self._global or sync_engine in self._engines:
                    _warn(f"{sync_engine!r} is already instrumented; nothing more to do")
                    continue
                self._listen(sync_engine)
                self._hide_parameters(sync_engine)
                patch = wrap(sync_engine, "raw_connection", self._traced_raw_connection)
                self._engines[sync_engine] = [patch]
                self._ensure_return_patch()

    def uninstrument(
        self, *, engine: Engine | AsyncEngine | Iterable[Engine | AsyncEngine] | None = None
    ) -> None:
        """Undo :meth:`instrument`: everything (``engine=None``), or the given engines."""
        with self._lock:
            if engine is None:
                if not self._global and not self._engines:
                    _warn("SQLAlchemyInstrumentor.uninstrument(): nothing is instrumented")
                if self._release_global():
                    self._unlisten(Engine)
                    self._unwrap_all(self._patches)
                for sync_engine in list(self._engines):
                    self._detach(sync_engine)
            else:
                for sync_engine in _sync_engines(engine):
                    if sync_engine in self._engines:
                        self._detach(sync_engine)
            if not self._global and not self._engines:
                self._unwrap_all(self._return_patches)
                for hidden, previous in list(self._hidden.items()):
                    hidden.hide_parameters = previous
                self._hidden.clear()

    # --- hooks ----------------------------------------------------------------------------------

    def _listen(self, target: Any) -> None:
        for name in _EVENTS:
            event.listen(target, name, getattr(self, f"_{name}"))

    def _unlisten(self, target: Any) -> None:
        for name in _EVENTS:
            fn = getattr(self, f"_{name}")
            if event.contains(target, name, fn):
                event.remove(target, name, fn)

    def _detach(self, engine: Engine) -> None:
        previous = self._hidden.pop(engine, None)
        if previous is not None:
            engine.hide_parameters = previous
        self._unlisten(engine)
        self._unwrap_all(self._engines.pop(engine, []))

    def _ensure_return_patch(self) -> None:
        # Pool._return_conn is where a connection is back in the pool (the `checkin` event
        # fires before that): the one place the idle and overflow counts are right. Pool
        # classes may override it (SingletonThreadPool in 1.4): each definition is wrapped.
        if self._return_patches:
            return
        for cls in pool_classes():
            if "_return_conn" in vars(cls):
                wrapper = self._return_conn_wrapper(cls)
                self._return_patches.append(wrap(cls, "_return_conn", wrapper))

    def _info(self, engine: Engine) -> EngineInfo:
        info = self._infos.get(engine)
        if info is None:
            with self._info_lock:
                info = self._infos.get(engine)
                if info is None:
                    info = self._infos[engine] = EngineInfo(engine)
                    self._hide_parameters(engine)
        return info

    def _hide_parameters(self, engine: Engine) -> None:
        """Keep parameters out of the engine's error messages (see the module docstring)."""
        if self.record_parameters or engine in self._hidden:
            return
        previous = getattr(engine, "hide_parameters", None)
        if isinstance(previous, bool):
            self._hidden[engine] = previous
            engine.hide_parameters = True

    # --- statements -----------------------------------------------------------------------------

    def _before_cursor_execute(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        if context is None:
            return  # the dialect's own first-connect queries
        try:
            info = self._info(conn.engine)
            text, operation = sanitize(statement, backslash_escapes=info.backslashes)
            attributes = dict(info.attributes)
            attributes[sc.ATTR_DB_OPERATION] = operation
            attributes[sc.ATTR_DB_QUERY_TEXT] = text
            if executemany and isinstance(parameters, (list, tuple)) and len(parameters) > 1:
                attributes[sc.ATTR_DB_BATCH_SIZE] = len(parameters)
            elif self.record_parameters:
                attributes.update(parameter_attributes(parameters))
            span = self.start_span(info.span_name(operation), attributes)
            setattr(context, self._state, (_perf(), span, info, text, operation, parameters))
        except Exception as exc:
            self.internal_error("before_cursor_execute", exc)

    def _after_cursor_execute(
        self,
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        if context is None:
            return
        try:
            state = context.__dict__.pop(self._state, None)
            if state is not None:
                self._finish(state, None)
        except Exception as exc:
            self.internal_error("after_cursor_execute", exc)

    def _handle_error(self, exception_context: ExceptionContext) -> None:
        try:
            context = exception_context.execution_context
            if context is None:
                return
            state = context.__dict__.pop(self._state, None)
            if state is not None:
                self._finish(state, exception_context.original_exception)
        except Exception as exc:
            self.internal_error("handle_error", exc)

    def _finish(self, state: tuple[Any, ...], exception: BaseException | None) -> None:
        started, span, info, text, operation, parameters = state
        duration = _perf() - started
        status = sc.DB_STATUS_OK if exception is None else sc.DB_STATUS_ERROR
        self.duration.labels(info.system, operation, status).observe(duration)
        if span is not None:
            end_span(span, exception)
        threshold = self.slow_query_threshold
        if threshold is not None and duration >= threshold:
            self._log_slow(span, info, text, operation, status, duration, parameters)

    def _log_slow(
        self,
        span: Span | None,
        info: EngineInfo,
        text: str,
        operation: str,
        status: str,
        duration: float,
        parameters: Any,
    ) -> None:
        fields: dict[str, Any] = {
            "statement": text,
            "duration_ms": round(duration * 1000.0, 3),
            "db_system": info.system,
            "operation": operation,
            "status": status,
        }
        if info.namespace:
            fields["db_namespace"] = info.namespace
        if span is not None:
            context = span.get_span_context()
            if context.is_valid:
                fields["trace_id"] = format(context.trace_id, "032x")
                fields["span_id"] = format(context.span_id, "016x")
        if self.record_parameters:
            fields["parameters"] = parameters_for_log(parameters)
        self._slow_log.warning("slow query", **fields)

    # --- the pool -------------------------------------------------------------------------------

    def _traced_raw_connection(
        self, wrapped: Any, instance: Engine, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        started = _perf()
        connection = wrapped(*args, **kwargs)
        try:
            self._checked_out(instance, _perf() - started)
        except Exception as exc:
            self.internal_error("checkout", exc)
        return connection

    def _checked_out(self, engine: Engine, wait: float) -> None:
        info = self._info(engine)
        pool = engine.pool
        gauges = self._pools.get(pool)
        if gauges is None:
            key = (info.system, info.pool_name)
            gauges = self._gauges.get(key)
            if gauges is None:
                gauges = self._gauges.setdefault(key, PoolGauges(self.connections, info))
            self._pools[pool] = gauges
        gauges.refresh(pool, 1)
        self.wait.labels(info.system, info.pool_name).observe(wait)
        threshold = self.checkout_event_threshold
        if threshold is None or wait < threshold:
            return
        current = get_current_span()
        if current.is_recording():
            current.add_event(
                sc.EVENT_DB_CHECKOUT,
                {sc.ATTR_DB_POOL_NAME: info.pool_name, sc.ATTR_DB_WAIT_TIME: wait},
            )

    def _return_conn_wrapper(self, owner: type) -> Any:
        """The wrapper of ``owner._return_conn``: it records only when ``owner``'s is the
        definition the pool uses (not one reached through ``super()`` from an override)."""
        used_by: dict[type, bool] = {}

        def _traced_return_conn(
            wrapped: Any, instance: Pool, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            result = wrapped(*args, **kwargs)
            gauges = self._pools.get(instance)
            if gauges is not None:
                try:
                    kind = type(instance)
                    mine = used_by.get(kind)
                    if mine is None:
                        mine = used_by[kind] = defining(kind, "_return_conn") is owner
                    if mine:
                        gauges.refresh(instance, -1)
                except Exception as exc:
                    self.internal_error("checkin", exc)
            return result

        return _traced_return_conn


def _sync_engines(engines: Any) -> list[Engine]:
    """Engines as given (one or several, sync or async) as the sync engines to instrument."""
    items = [engines] if isinstance(engines, Engine) or hasattr(engines, "sync_engine") else engines
    found: list[Engine] = []
    for item in items:
        sync = getattr(item, "sync_engine", item)
        if not isinstance(sync, Engine):
            raise TypeError(
                f"instrument(engine=...) takes SQLAlchemy engines (sync or async), "
                f"got {type(item).__name__}"
            )
        if sync not in found:
            found.append(sync)
    return found


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=3)
