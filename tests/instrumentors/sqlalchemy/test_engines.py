"""Which engines are instrumented: all of them, some of them, async ones once; and undoing it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from sqlalchemy import Engine, event, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import Pool

from telemetry_web.instrumentors import _base
from telemetry_web.instrumentors.sqlalchemy import SQLAlchemyInstrumentor
from telemetry_web.testing import CapturedTelemetry

from .._support import metric_value, named
from .conftest import MakeInstrumentor

MakeEngine = Callable[..., Engine]


def _run(engine: Engine, sql: str = "SELECT 1") -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def _db_spans(captured: CapturedTelemetry) -> list[str]:
    return sorted(
        f"{s.attributes['db.system']!s}:{s.name}"
        for s in captured.spans()
        if s.attributes and "db.system" in s.attributes
    )


def test_engines_created_before_and_after_instrument(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, make_engine: MakeEngine
) -> None:
    """``instrument()`` covers an engine that already existed and one created afterwards."""
    before = make_engine()
    make_instrumentor().instrument()
    after = make_engine("sqlite://")
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        _run(before)
        _run(after)
    assert _db_spans(captured) == ["postgresql:SELECT test", "sqlite:SELECT"]


def test_only_the_named_engines(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, make_engine: MakeEngine
) -> None:
    """``instrument(engine=[...])`` records those engines' statements and no other's."""
    first, second, other = make_engine(), make_engine("sqlite://"), make_engine()
    make_instrumentor().instrument(engine=[first, second])
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        _run(first)
        _run(second)
        _run(other)
    assert _db_spans(captured) == ["postgresql:SELECT test", "sqlite:SELECT"]


def test_instrumenting_twice_warns_and_records_once(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine, lite: Engine
) -> None:
    """A second ``instrument()``, a second instrumentor for the same Telemetry and naming an
    engine already covered all warn, and every statement is still one span."""
    instrumentor = make_instrumentor()
    instrumentor.instrument(engine=lite)
    with pytest.warns(RuntimeWarning, match="already instrumented"):
        instrumentor.instrument(engine=lite)
    instrumentor.instrument()
    with pytest.warns(RuntimeWarning, match="called twice"):
        instrumentor.instrument()
    with pytest.warns(RuntimeWarning, match="already instruments everything"):
        make_instrumentor().instrument()
    with pytest.warns(RuntimeWarning, match="already instrumented"):
        instrumentor.instrument(engine=pg)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        _run(pg)
        _run(lite)
    assert _db_spans(captured) == ["postgresql:SELECT test", "sqlite:SELECT"]


async def test_async_engines_are_instrumented_once(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, async_postgres_url: str
) -> None:
    """An AsyncEngine (asyncpg) gives one span per statement, under the caller's span, whether
    everything is instrumented or the async engine and its sync engine are both named."""
    engine = create_async_engine(async_postgres_url)
    try:
        instrumentor = make_instrumentor()
        instrumentor.instrument(engine=engine)
        with pytest.warns(RuntimeWarning, match="already instrumented"):
            instrumentor.instrument(engine=engine.sync_engine)
        tracer = captured.telemetry.get_tracer("test")
        with tracer.start_as_current_span("request") as parent:
            async with engine.connect() as conn:
                result = await conn.execute(text("SELECT :n * 2"), {"n": 21})
                assert result.scalar() == 42
        instrumentor.uninstrument()
        instrumentor.instrument()
        with tracer.start_as_current_span("request"):
            async with engine.begin() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    spans = named(captured.spans(), "SELECT test")
    assert len(spans) == 2
    assert spans[0].parent is not None
    assert spans[0].parent.span_id == parent.get_span_context().span_id
    assert spans[0].attributes is not None
    assert spans[0].attributes["db.query.text"] == "SELECT $1 * ?"


def test_uninstrument_restores_the_originals(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine, lite: Engine
) -> None:
    """After ``uninstrument()`` the original methods are back, no listener is left and
    statements are no longer recorded; a second ``uninstrument()`` warns."""
    raw_connection = vars(Engine)["raw_connection"]
    pools = [Pool, *Pool.__subclasses__()]
    return_conns = {cls: vars(cls)["_return_conn"] for cls in pools if "_return_conn" in vars(cls)}
    instrumentor = make_instrumentor()
    instrumentor.instrument()
    with pytest.warns(RuntimeWarning, match="already instrumented"):
        instrumentor.instrument(engine=lite)  # already covered: adds nothing
    assert vars(Engine)["raw_connection"] is not raw_connection
    instrumentor.uninstrument()
    assert vars(Engine)["raw_connection"] is raw_connection
    assert {cls: vars(cls).get("_return_conn") for cls in return_conns} == return_conns
    for name in ("before_cursor_execute", "after_cursor_execute", "handle_error"):
        assert not event.contains(Engine, name, getattr(instrumentor, f"_{name}"))
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        _run(pg)
    assert _db_spans(captured) == []
    with pytest.warns(RuntimeWarning, match="nothing is instrumented"):
        instrumentor.uninstrument()


def test_uninstrument_one_engine(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine, lite: Engine
) -> None:
    """``uninstrument(engine=...)`` stops one engine and leaves the other recording."""
    instrumentor = make_instrumentor()
    instrumentor.instrument(engine=[pg, lite])
    instrumentor.uninstrument(engine=pg)
    assert "raw_connection" not in vars(pg)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        _run(pg)
        _run(lite)
    assert _db_spans(captured) == ["sqlite:SELECT"]


def test_not_an_engine_is_refused(make_instrumentor: MakeInstrumentor) -> None:
    """Passing something that is not an engine says what was expected."""
    with pytest.raises(TypeError, match="takes SQLAlchemy engines"):
        make_instrumentor().instrument(engine=["postgresql://"])  # type: ignore[list-item]


class ExplodingProcessor(SpanProcessor):
    """A span processor with a bug: every span start raises."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("processor bug")


def test_its_own_failure_never_breaks_the_query(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    pg: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When recording fails (here a broken span processor), every statement still returns its
    rows, the metric is still recorded, and the failure is logged once."""
    monkeypatch.setattr(_base, "STRICT", False)
    tel = captured.telemetry
    make_instrumentor().instrument()
    parent = tel.get_tracer("test").start_span("request")
    assert tel.tracer_provider is not None
    tel.tracer_provider.add_span_processor(ExplodingProcessor())
    with trace.use_span(parent, end_on_exit=False):
        results = [_run(pg, f"SELECT {n}") for n in range(3)]
    assert results == [0, 1, 2]
    failures = [
        e for e in captured.logs()
        if e.get("logger") == "telemetry_web.instrumentors" and e.get("level") == "warning"
    ]  # fmt: skip
    assert len(failures) == 1
    assert "sqlalchemy instrumentation failed in start_span" in failures[0]["event"]
    assert tel.get_metric("db_client_operation_duration_seconds") is not None
    assert metric_value(tel, "db_client_operation_duration_seconds_count",
                        db_system="postgresql", operation="SELECT", status="ok") == 3  # fmt: skip


def test_strict_mode_raises_in_tests(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, lite: Engine
) -> None:
    """Under the test suite's strict mode the same failure surfaces instead of being hidden."""
    assert captured.telemetry.tracer_provider is not None
    captured.telemetry.tracer_provider.add_span_processor(ExplodingProcessor())
    make_instrumentor(root_spans=True).instrument()
    with pytest.raises(RuntimeError, match="processor bug"):
        _run(lite)


def test_telemetry_can_be_passed_to_several_instrumentors(
    make_captured: Callable[..., CapturedTelemetry], cleanup: list[Any], lite: Engine
) -> None:
    """Two Telemetry objects, each with its own instrumentor, both record the statement."""
    first, second = make_captured(), make_captured()
    for captured in (first, second):
        instrumentor = SQLAlchemyInstrumentor(telemetry=captured.telemetry, root_spans=True)
        cleanup.append(instrumentor)
        instrumentor.instrument()
    _run(lite)
    assert [s.name for s in first.spans()] == [s.name for s in second.spans()] == ["SELECT"]


async def test_async_engine_errors_are_raised_unchanged(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, async_postgres_url: str
) -> None:
    """A failing statement on an AsyncEngine raises what it raises uninstrumented, and its span
    is an error."""
    from sqlalchemy.exc import DBAPIError

    engine = create_async_engine(async_postgres_url)
    sql = text("SELECT * FROM no_such_table_tw")
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as plain:
                await conn.execute(sql)
        make_instrumentor().instrument(engine=engine)
        with captured.telemetry.get_tracer("test").start_as_current_span("request"):
            async with engine.connect() as conn:
                with pytest.raises(DBAPIError) as instrumented:
                    await conn.execute(sql)
    finally:
        await engine.dispose()
    assert type(instrumented.value) is type(plain.value)
    assert str(instrumented.value) == str(plain.value)
    (span,) = named(captured.spans(), "SELECT test")
    assert span.status.status_code.name == "ERROR"
