"""Commands, pipelines and transactions on the real Redis, sync and asyncio."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
import redis.asyncio
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import ResponseError, WatchError

from telemetry_web.testing import CapturedTelemetry

from .._support import is_child_of, metric_value, named, only
from .conftest import MakeInstrumentor

Key = Callable[[str], str]
DURATION_COUNT = "db_client_operation_duration_seconds_count"
SERVER = {"db.system": "redis", "db.namespace": "0", "server.address": "127.0.0.1",
          "server.port": 6379}  # fmt: skip


def _count(captured: CapturedTelemetry, operation: str, status: str = "ok") -> float | None:
    return metric_value(captured.telemetry, DURATION_COUNT, db_system="redis",
                        operation=operation, status=status)  # fmt: skip


def test_a_command_is_a_client_span_under_the_current_span(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis, key: Key
) -> None:
    """SET and GET become CLIENT spans under the current span, with the server, database
    index, operation, key count and a query text without values; results are unchanged."""
    make_instrumentor().instrument()
    with captured.telemetry.get_tracer("test").start_as_current_span("request") as parent:
        assert client.set(key("user"), "ada@example.org") is True
        assert client.get(key("user")) == b"ada@example.org"
    spans = captured.spans()
    set_span, get_span = only(spans, "SET"), only(spans, "GET")
    assert is_child_of(set_span, parent)
    assert is_child_of(get_span, parent)
    assert set_span.kind is SpanKind.CLIENT
    assert dict(set_span.attributes or {}) == {
        **SERVER, "db.operation.name": "SET", "db.redis.key_count": 1, "db.query.text": "SET ? ?",
    }  # fmt: skip
    assert dict(get_span.attributes or {})["db.query.text"] == "GET ?"
    assert "ada@example.org" not in repr([dict(s.attributes or {}) for s in spans])
    assert _count(captured, "SET") == _count(captured, "GET") == 1


def test_argument_values_are_recorded_only_when_enabled(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis, key: Key
) -> None:
    """``record_arguments=True`` puts keys and values in ``db.query.text``."""
    make_instrumentor(record_arguments=True).instrument()
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        client.set(key("k"), "v1")
    span = only(captured.spans(), "SET")
    assert dict(span.attributes or {})["db.query.text"] == f"SET {key('k')} v1"


@pytest.mark.parametrize(
    ("command", "keys"),
    [(("MGET", "@a", "@b", "@c"), 3), (("MSET", "@a", "1", "@b", "2"), 2), (("PING",), 0),
     (("EVAL", "return 1", "2", "@a", "@b", "x"), 2), (("HSET", "@h", "f", "v"), 1),
     (("CLIENT GETNAME",), 0)],
)  # fmt: skip
def test_key_counts(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: redis.Redis,
    key: Key,
    command: tuple[str, ...],
    keys: int,
) -> None:
    """``db.redis.key_count`` counts the keys a command names, by the kind of command (``@x``
    stands for a key of this test)."""
    make_instrumentor().instrument()
    name, *args = command
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        client.execute_command(  # type: ignore[no-untyped-call]  # unannotated in redis-py
            name, *(key(a[1:]) if a.startswith("@") else a for a in args)
        )
    span = only(captured.spans(), name)
    assert dict(span.attributes or {})["db.redis.key_count"] == keys


def test_no_root_spans_by_default_but_metrics(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis
) -> None:
    """Outside any span a command is counted but makes no trace; ``root_spans=True`` makes one."""
    instrumentor = make_instrumentor()
    instrumentor.instrument()
    client.ping()
    assert captured.spans() == []
    assert _count(captured, "PING") == 1
    instrumentor.uninstrument()
    make_instrumentor(root_spans=True).instrument()
    client.ping()
    assert [(s.name, s.parent) for s in captured.spans()] == [("PING", None)]


def _wrongtype(client: redis.Redis, key: Key) -> ResponseError:
    client.set(key("string"), "x")
    with pytest.raises(ResponseError) as info:
        client.lpush(key("string"), "y")
    return info.value


def test_a_wrong_type_error_is_raised_unchanged(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    make_client: Callable[[], redis.Redis],
    key: Key,
) -> None:
    """WRONGTYPE raises the same exception and message as uninstrumented; the span is an error
    and the sample has status="error"."""
    plain = _wrongtype(make_client(), key)
    instrumented_client = make_client()
    make_instrumentor().instrument(client=instrumented_client)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        instrumented = _wrongtype(instrumented_client, key)
    assert type(instrumented) is type(plain)
    assert str(instrumented) == str(plain)
    assert str(plain).startswith("WRONGTYPE")
    span = only(captured.spans(), "LPUSH")
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "redis.exceptions.ResponseError"
    assert _count(captured, "LPUSH", "error") == 1


def test_a_pipeline_is_one_span_with_its_command_names(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis, key: Key
) -> None:
    """A non-transactional pipeline is one PIPELINE span listing its commands, in order."""
    make_instrumentor().instrument()
    tracer = captured.telemetry.get_tracer("test")
    with tracer.start_as_current_span("request") as parent, client.pipeline(False) as pipe:
        pipe.set(key("a"), 1)
        pipe.incr(key("a"))
        pipe.get(key("a"))
        assert pipe.execute() == [True, 2, b"2"]
    spans = [s for s in captured.spans() if s.name != "request"]
    assert [s.name for s in spans] == ["PIPELINE"]
    assert is_child_of(spans[0], parent)
    attributes = dict(spans[0].attributes or {})
    assert attributes["db.redis.commands"] == ("SET", "INCRBY", "GET")
    assert attributes["db.operation.batch.size"] == 3
    assert "db.query.text" not in attributes
    assert _count(captured, "PIPELINE") == 1


def test_a_transaction_with_watch(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis, key: Key
) -> None:
    """WATCH and the reads while watching are spans of their own, the queued commands one
    MULTI span; a transaction broken by a concurrent write raises WatchError as usual and is
    recorded as an error."""
    make_instrumentor().instrument()
    client.set(key("balance"), 10)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        with client.pipeline() as pipe:
            pipe.watch(key("balance"))  # type: ignore[no-untyped-call]  # unannotated in redis-py
            balance = int(pipe.get(key("balance")))  # type: ignore[arg-type]
            pipe.multi()
            pipe.set(key("balance"), balance - 3)
            assert pipe.execute() == [True]
        with client.pipeline() as pipe:
            pipe.watch(key("balance"))  # type: ignore[no-untyped-call]  # unannotated in redis-py
            client.set(key("balance"), 0)  # another writer
            pipe.multi()
            pipe.set(key("balance"), 99)
            with pytest.raises(WatchError):
                pipe.execute()
    assert client.get(key("balance")) == b"0"
    names = [s.name for s in captured.spans() if s.name != "request"]
    assert names == ["WATCH", "GET", "MULTI", "WATCH", "SET", "MULTI"]
    multi = named(captured.spans(), "MULTI")
    assert [m.status.status_code for m in multi] == [StatusCode.UNSET, StatusCode.ERROR]
    assert (_count(captured, "MULTI"), _count(captured, "MULTI", "error")) == (1, 1)


def test_pipeline_errors_returned_as_results_mark_the_span(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis, key: Key
) -> None:
    """With ``raise_on_error=False`` the results are returned as usual, and an error among
    them makes the pipeline span and sample errors."""
    make_instrumentor().instrument()
    client.set(key("s"), "x")
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        pipe = client.pipeline(transaction=False)
        pipe.get(key("s"))
        pipe.lpush(key("s"), "y")
        results = pipe.execute(raise_on_error=False)
    assert results[0] == b"x"
    assert isinstance(results[1], ResponseError)
    span = only(captured.spans(), "PIPELINE")
    assert span.status.status_code is StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "ResponseError"
    assert _count(captured, "PIPELINE", "error") == 1


async def test_asyncio_commands_pipelines_and_errors(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    aclient: redis.asyncio.Redis,
    key: Key,
) -> None:
    """The asyncio client records commands, pipelines, transactions and errors like the sync
    one, under the awaiting task's span."""
    make_instrumentor().instrument()
    with captured.telemetry.get_tracer("test").start_as_current_span("request") as parent:
        assert await aclient.set(key("a"), "1") is True
        assert await aclient.incr(key("a")) == 2
        async with aclient.pipeline(transaction=False) as pipe:
            pipe.get(key("a"))
            pipe.exists(key("a"), key("b"))
            assert await pipe.execute() == [b"2", 1]
        async with aclient.pipeline() as pipe:
            pipe.incr(key("a"))
            assert await pipe.execute() == [3]
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await aclient.lpush(key("a"), "x")
    spans = [s for s in captured.spans() if s.name != "request"]
    assert [s.name for s in spans] == ["SET", "INCRBY", "PIPELINE", "MULTI", "LPUSH"]
    assert all(is_child_of(s, parent) for s in spans)
    assert dict(spans[2].attributes or {})["db.redis.commands"] == ("GET", "EXISTS")
    assert spans[-1].status.status_code is StatusCode.ERROR
    assert _count(captured, "LPUSH", "error") == 1


def test_recorded_arguments_keep_credentials_out(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis, key: Key
) -> None:
    """With ``record_arguments=True``, the value after a key or field naming a credential, and
    card numbers, are ``REDACTED``; other arguments are recorded as they are."""
    make_instrumentor(record_arguments=True).instrument()
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        client.set(key("api_token"), "tok-123")
        client.hset(key("user"), mapping={"password": "pw-456", "name": "ada"})
        client.set(key("note"), "paid with 4111 1111 1111 1111")
    texts = [dict(s.attributes or {}).get("db.query.text") for s in captured.spans()]
    assert f"SET {key('api_token')} REDACTED" in texts
    assert f"HSET {key('user')} password REDACTED name ada" in texts
    assert f"SET {key('note')} paid with REDACTED" in texts
    assert not any("tok-123" in str(t) or "pw-456" in str(t) for t in texts)
