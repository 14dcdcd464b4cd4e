"""A span, a metric sample and (when slow) a log line per statement, on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from telemetry_web.testing import CapturedTelemetry

from .._support import is_child_of, metric_value, only
from .conftest import MakeInstrumentor

DURATION_COUNT = "db_client_operation_duration_seconds_count"


def test_a_statement_is_a_client_span_under_the_current_span(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine
) -> None:
    """A PostgreSQL statement becomes a CLIENT span, child of the current one, with the
    database semantic-convention attributes and nothing else."""
    make_instrumentor().instrument()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request") as parent, pg.connect() as conn:
        assert conn.execute(text("SELECT 40 + 2 AS answer")).scalar() == 42
    span = only(captured.spans(), "SELECT test")
    assert is_child_of(span, parent)
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "db.system": "postgresql",
        "db.namespace": "test",
        "db.operation.name": "SELECT",
        "db.query.text": "SELECT ? + ? AS answer",
        "server.address": "127.0.0.1",
        "server.port": 5432,
    }


def test_sqlite_in_memory_has_no_server_attributes(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, lite: Engine
) -> None:
    """An in-memory SQLite statement is named after its operation alone, with no server."""
    make_instrumentor().instrument()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request"), lite.connect() as conn:
        assert conn.execute(text("SELECT 'x'")).scalar() == "x"
    span = only(captured.spans(), "SELECT")
    assert dict(span.attributes or {}) == {
        "db.system": "sqlite",
        "db.operation.name": "SELECT",
        "db.query.text": "SELECT ?",
    }


def test_no_root_spans_without_a_current_span_but_metrics(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine
) -> None:
    """Outside any span a statement makes no trace of its own, and is still counted."""
    make_instrumentor().instrument()
    with pg.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert captured.spans() == []
    tel = captured.telemetry
    assert metric_value(tel, DURATION_COUNT, db_system="postgresql", operation="SELECT",
                        status="ok") == 1  # fmt: skip


def test_root_spans_when_asked_for(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, lite: Engine
) -> None:
    """With ``root_spans=True`` a statement outside any span starts a trace."""
    make_instrumentor(root_spans=True).instrument()
    with lite.connect() as conn:
        conn.execute(text("SELECT 1"))
    span = only(captured.spans(), "SELECT")
    assert span.parent is None


def test_parameters_are_not_recorded_by_default(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine
) -> None:
    """Bound parameter values and inline literals appear nowhere on the span."""
    make_instrumentor().instrument()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request"), pg.connect() as conn:
        sql = text("SELECT :email AS email, 'hunter2' AS password")
        row = conn.execute(sql, {"email": "ada@example.org"}).one()
    assert tuple(row) == ("ada@example.org", "hunter2")
    span = only(captured.spans(), "SELECT test")
    assert span.attributes is not None
    assert span.attributes["db.query.text"] == "SELECT %(email)s AS email, ? AS password"
    recorded = repr(dict(span.attributes))
    assert "ada@example.org" not in recorded
    assert "hunter2" not in recorded


def test_parameters_are_recorded_when_enabled(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine
) -> None:
    """``record_parameters=True`` adds one ``db.query.parameter.<name>`` attribute each."""
    make_instrumentor(record_parameters=True).instrument()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request"), pg.connect() as conn:
        conn.execute(text("SELECT :email, :n"), {"email": "ada@example.org", "n": 7})
    span = only(captured.spans(), "SELECT test")
    assert span.attributes is not None
    assert span.attributes["db.query.parameter.email"] == "ada@example.org"
    assert span.attributes["db.query.parameter.n"] == "7"


def _error_of(engine: Engine, sql: str) -> DBAPIError:
    with engine.connect() as conn, pytest.raises(DBAPIError) as info:
        conn.execute(text(sql))
    return info.value


def test_bad_sql_raises_exactly_what_it_raises_uninstrumented(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, make_engine: object
) -> None:
    """A failing statement raises the same exception, with the same message, instrumented or
    not; its span is an error and its sample has status="error"."""
    plain_engine = make_engine()  # type: ignore[operator]
    instrumented_engine = make_engine()  # type: ignore[operator]
    sql = "SELECT * FROM no_such_table_tw WHERE id = 1"
    plain = _error_of(plain_engine, sql)
    make_instrumentor().instrument(engine=instrumented_engine)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        instrumented = _error_of(instrumented_engine, sql)
    assert type(instrumented) is type(plain) is ProgrammingError
    assert type(instrumented.orig) is type(plain.orig)
    assert str(instrumented) == str(plain)
    span = only(captured.spans(), "SELECT test")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "psycopg.errors.UndefinedTable"
    assert [e.name for e in span.events] == ["exception"]
    tel = captured.telemetry
    assert metric_value(tel, DURATION_COUNT, db_system="postgresql", operation="SELECT",
                        status="error") == 1  # fmt: skip


def test_orm_style_core_statements_in_a_transaction(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, lite: Engine
) -> None:
    """DDL, an executemany INSERT (its batch size recorded), a SELECT and a rolled-back
    transaction behave as uninstrumented and give one span each."""
    make_instrumentor().instrument()
    users = Table(
        "users", MetaData(), Column("id", Integer, primary_key=True), Column("name", String)
    )
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        with lite.begin() as conn:
            users.create(conn)
            conn.execute(insert(users), [{"name": "ada"}, {"name": "grace"}, {"name": "linus"}])
        with lite.connect() as conn:
            trans = conn.begin()
            conn.execute(insert(users), {"name": "rolled back"})
            trans.rollback()
            names = conn.execute(select(users.c.name).order_by(users.c.id)).scalars().all()
    assert names == ["ada", "grace", "linus"]
    spans = captured.spans()
    operations = [s.attributes["db.operation.name"] for s in spans if s.attributes and
                  s.attributes.get("db.system") == "sqlite"]  # fmt: skip
    assert operations.count("CREATE") == 1
    assert operations.count("INSERT") == 2
    assert operations[-1] == "SELECT"
    batch = [s for s in spans if s.attributes and s.attributes.get("db.operation.batch.size")]
    assert [s.attributes["db.operation.batch.size"] for s in batch] == [3]  # type: ignore[index]


def test_slow_statements_get_a_log_line_with_the_trace_id(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, pg: Engine
) -> None:
    """A statement at or past the threshold logs its sanitized text, duration and trace id;
    a fast one logs nothing, and parameters stay out of the line."""
    make_instrumentor(slow_query_threshold=0.2).instrument()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request") as parent, pg.connect() as conn:
        conn.execute(text("SELECT 1"))
        conn.execute(text("SELECT pg_sleep(0.25), :secret"), {"secret": "s3cr3t"})
    lines = [e for e in captured.logs() if e.get("logger") == "telemetry_web.sqlalchemy"]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "slow query"
    assert line["level"] == "warning"
    assert line["statement"] == "SELECT pg_sleep(?), %(secret)s"
    assert line["duration_ms"] >= 250
    assert line["trace_id"] == format(parent.get_span_context().trace_id, "032x")
    assert (line["db_system"], line["operation"], line["status"]) == ("postgresql", "SELECT", "ok")
    assert "s3cr3t" not in repr(line)


def test_slow_query_line_carries_parameters_when_enabled(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, lite: Engine
) -> None:
    """With ``record_parameters=True`` the slow-query line lists the bound values as the driver
    gets them (SQLite's are positional)."""
    make_instrumentor(slow_query_threshold=0, record_parameters=True).instrument()
    with lite.connect() as conn:
        conn.execute(text("SELECT :who"), {"who": "ada"})
    lines = [e for e in captured.logs() if e.get("event") == "slow query"]
    assert [line["parameters"] for line in lines] == [["ada"]]
    assert "trace_id" not in lines[0]  # no span: outside any request, no root span


def test_a_negative_threshold_is_refused(captured: CapturedTelemetry) -> None:
    """The threshold is validated when the instrumentor is made, naming the argument."""
    from telemetry_web.instrumentors import SQLAlchemyInstrumentor

    with pytest.raises(ValueError, match="slow_query_threshold: expected a number of seconds"):
        SQLAlchemyInstrumentor(telemetry=captured.telemetry, slow_query_threshold=-1)


def test_hide_parameters_while_instrumented(
    make_instrumentor: MakeInstrumentor, make_engine: Callable[..., Engine]
) -> None:
    """Instrumented engines get SQLAlchemy's ``hide_parameters`` (its errors then carry no
    ``[parameters: ...]``), restored by ``uninstrument``; ``record_parameters=True`` leaves
    engines as they are."""
    engine = make_engine()
    instrumentor = make_instrumentor()
    instrumentor.instrument(engine=engine)
    assert engine.hide_parameters is True
    error = _error_of_with(engine, "SELECT * FROM no_such_table_tw WHERE id = :id", {"id": 7})
    assert "[parameters:" not in str(error)
    instrumentor.uninstrument()
    assert engine.hide_parameters is False
    recording = make_instrumentor(record_parameters=True)
    recording.instrument(engine=engine)
    assert engine.hide_parameters is False
    recording.uninstrument()


def _error_of_with(engine: Engine, sql: str, parameters: dict[str, object]) -> DBAPIError:
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text(sql), parameters)
    return caught.value
