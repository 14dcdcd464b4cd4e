"""Connection pools: used/idle/overflow gauges, checkout wait times and checkout events."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, text

from telemetry_web.testing import CapturedTelemetry

from .._support import metric_value
from .conftest import MakeInstrumentor

PG_POOL = "postgresql://127.0.0.1:5432/test"


def _pool_state(captured: CapturedTelemetry, system: str, pool: str) -> tuple[float | None, ...]:
    tel = captured.telemetry
    return tuple(
        metric_value(tel, "db_client_connections", db_system=system, pool=pool, state=state)
        for state in ("used", "idle", "overflow")
    )


def test_queue_pool_gauges_follow_checkouts_and_checkins(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    make_engine: Callable[..., Engine],
) -> None:
    """With pool_size=1 and max_overflow=2, three checkouts show 3 used and 2 overflow; each
    return is counted once the connection is back (kept idle or closed as overflow)."""
    engine = make_engine(pool_size=1, max_overflow=2)
    make_instrumentor().instrument(engine=engine)
    connections = [engine.connect() for _ in range(3)]
    for conn in connections:
        conn.execute(text("SELECT 1"))
    assert _pool_state(captured, "postgresql", PG_POOL) == (3, 0, 2)
    expected = [(2, 1, 2), (1, 1, 1), (0, 1, 0)]
    for conn, state in zip(connections, expected, strict=True):
        conn.close()
        assert _pool_state(captured, "postgresql", PG_POOL) == state


def test_pools_that_do_not_count_are_counted_by_us(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, lite: Engine
) -> None:
    """SQLite's in-memory pool keeps no counts: its used connections are counted on checkout
    and return."""
    make_instrumentor().instrument()
    with lite.connect() as conn:
        conn.execute(text("SELECT 1"))
        assert _pool_state(captured, "sqlite", "sqlite://") == (1, 0, 0)
    assert _pool_state(captured, "sqlite", "sqlite://") == (0, 0, 0)


def test_pool_logging_name_is_the_pool_label(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    make_engine: Callable[..., Engine],
) -> None:
    """An engine's ``pool_logging_name`` keeps its pool apart from another on the same URL."""
    engine = make_engine(pool_logging_name="orders")
    make_instrumentor().instrument()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _pool_state(captured, "postgresql", "orders") == (0, 1, 0)
    assert _pool_state(captured, "postgresql", PG_POOL) == (None, None, None)


def test_checkouts_are_timed_and_visible_on_the_current_span(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine
) -> None:
    """With ``checkout_event_threshold=0`` each checkout adds an event with the pool and wait
    time to the current span; every checkout is a sample of the wait-time histogram."""
    make_instrumentor(checkout_event_threshold=0).instrument()
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        for _ in range(2):
            with pg.connect() as conn:
                conn.execute(text("SELECT 1"))
    request = next(s for s in captured.spans() if s.name == "request")
    checkouts = [e for e in request.events if e.name == "db.client.connection.checkout"]
    assert len(checkouts) == 2
    for checkout in checkouts:
        assert checkout.attributes is not None
        assert checkout.attributes["db.client.connection.pool.name"] == PG_POOL
        wait = checkout.attributes["db.client.connection.wait_time"]
        assert isinstance(wait, float)
        assert 0 <= wait < 5
    tel = captured.telemetry
    assert metric_value(tel, "db_client_connection_wait_time_seconds_count",
                        db_system="postgresql", pool=PG_POOL) == 2  # fmt: skip


def test_quick_checkouts_add_no_event(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine
) -> None:
    """A checkout quicker than the threshold is only timed: the span gets no event."""
    make_instrumentor(checkout_event_threshold=60).instrument()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request"), pg.connect() as conn:
        conn.execute(text("SELECT 1"))
    request = next(s for s in captured.spans() if s.name == "request")
    assert request.events == ()
    tel = captured.telemetry
    assert metric_value(tel, "db_client_connection_wait_time_seconds_count",
                        db_system="postgresql", pool=PG_POOL) == 1  # fmt: skip
