"""Which clients are instrumented: all, some (with their pipelines); and undoing it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.cluster
import redis.client
import redis.cluster
import wrapt
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from telemetry_web.instrumentors import _base
from telemetry_web.testing import CapturedTelemetry

from .._support import metric_value
from .conftest import MakeInstrumentor

Key = Callable[[str], str]

# Every (class, attribute) that instrument() wraps in this redis-py.
GLOBAL_TARGETS = [
    (redis.client.Redis, "execute_command"),
    (redis.client.Pipeline, "execute"),
    (redis.client.Pipeline, "immediate_execute_command"),
    (redis.asyncio.client.Redis, "execute_command"),
    (redis.asyncio.client.Pipeline, "execute"),
    (redis.asyncio.client.Pipeline, "immediate_execute_command"),
    (redis.cluster.RedisCluster, "execute_command"),
    (redis.cluster.ClusterPipeline, "execute"),
    (redis.asyncio.cluster.RedisCluster, "execute_command"),
    (redis.asyncio.cluster.ClusterPipeline, "execute"),
]


def _names(captured: CapturedTelemetry) -> list[str]:
    return [s.name for s in captured.spans() if s.name != "request"]


def test_clients_created_before_and_after_instrument(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    make_client: Callable[[], redis.Redis],
) -> None:
    """``instrument()`` covers a client that already existed and one created afterwards."""
    before = make_client()
    make_instrumentor().instrument()
    after = make_client()
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        before.ping()
        after.echo("hi")
    assert _names(captured) == ["PING", "ECHO"]


def test_only_the_named_clients_and_their_pipelines(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    make_client: Callable[[], redis.Redis],
    key: Key,
) -> None:
    """``instrument(client=...)`` records that client and the pipelines it makes, not others."""
    chosen, other = make_client(), make_client()
    make_instrumentor().instrument(client=chosen)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        chosen.set(key("a"), 1)
        other.set(key("b"), 2)
        with chosen.pipeline() as pipe:
            pipe.watch(key("a"))  # type: ignore[no-untyped-call]  # unannotated in redis-py
            pipe.multi()
            pipe.get(key("a"))
            assert pipe.execute() == [b"1"]
        other_pipe = other.pipeline()
        other_pipe.get(key("b"))
        other_pipe.execute()
    assert _names(captured) == ["SET", "WATCH", "MULTI"]


async def test_an_asyncio_client_named_alone(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    aclient: redis.asyncio.Redis,
    key: Key,
) -> None:
    """An asyncio client can be instrumented on its own, pipelines included."""
    make_instrumentor().instrument(client=aclient)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        await aclient.set(key("a"), 1)
        async with aclient.pipeline() as pipe:
            pipe.get(key("a"))
            assert await pipe.execute() == [b"1"]
    assert _names(captured) == ["SET", "MULTI"]


def test_instrumenting_twice_warns_and_records_once(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis
) -> None:
    """Instrumenting a client twice, everything twice, or a client already covered warns, and
    each command is still one span."""
    instrumentor = make_instrumentor()
    instrumentor.instrument(client=client)
    with pytest.warns(RuntimeWarning, match="already instrumented"):
        instrumentor.instrument(client=client)
    instrumentor.instrument()
    with pytest.warns(RuntimeWarning, match="called twice"):
        instrumentor.instrument()
    with pytest.warns(RuntimeWarning, match="already instruments everything"):
        make_instrumentor().instrument()
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        client.ping()
    assert _names(captured) == ["PING"]


def test_uninstrument_restores_the_originals(
    captured: CapturedTelemetry, make_instrumentor: MakeInstrumentor, client: redis.Redis
) -> None:
    """Every wrapped method, cluster clients' included, is a wrapt proxy while instrumented and
    the original function afterwards; a second ``uninstrument()`` warns."""
    originals = {(cls, name): vars(cls)[name] for cls, name in GLOBAL_TARGETS}
    instrumentor = make_instrumentor()
    instrumentor.instrument()
    for cls, name in GLOBAL_TARGETS:
        assert isinstance(vars(cls)[name], wrapt.FunctionWrapper), (cls, name)
    instrumentor.uninstrument()
    for (cls, name), original in originals.items():
        assert vars(cls)[name] is original, (cls, name)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        client.ping()
    assert _names(captured) == []
    with pytest.warns(RuntimeWarning, match="nothing is instrumented"):
        instrumentor.uninstrument()


def test_uninstrument_one_client_and_its_pipelines(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    make_client: Callable[[], redis.Redis],
    key: Key,
) -> None:
    """``uninstrument(client=...)`` leaves no attribute on the client, and a pipeline it made
    while instrumented stops recording too."""
    one, other = make_client(), make_client()
    instrumentor = make_instrumentor()
    instrumentor.instrument(client=[one, other])
    pipe = one.pipeline(transaction=False)
    instrumentor.uninstrument(client=one)
    assert "execute_command" not in vars(one)
    assert "pipeline" not in vars(one)
    with captured.telemetry.get_tracer("test").start_as_current_span("request"):
        one.ping()
        pipe.get(key("x"))
        pipe.execute()
        other.ping()
    assert _names(captured) == ["PING"]


def test_not_a_client_is_refused(make_instrumentor: MakeInstrumentor) -> None:
    """Passing something that is not a redis-py client says what was expected."""
    with pytest.raises(TypeError, match="takes redis-py clients"):
        make_instrumentor().instrument(client=["redis://"])


class ExplodingProcessor(SpanProcessor):
    """A span processor with a bug: every span start raises."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("processor bug")


def test_its_own_failure_never_breaks_the_command(
    captured: CapturedTelemetry,
    make_instrumentor: MakeInstrumentor,
    client: redis.Redis,
    key: Key,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When recording fails (a broken span processor), commands and pipelines return their
    results, metrics are still recorded and the failure is logged once."""
    monkeypatch.setattr(_base, "STRICT", False)
    tel = captured.telemetry
    make_instrumentor().instrument()
    parent = tel.get_tracer("test").start_span("request")
    assert tel.tracer_provider is not None
    tel.tracer_provider.add_span_processor(ExplodingProcessor())
    with trace.use_span(parent, end_on_exit=False):
        assert [client.set(key("n"), n) for n in range(3)] == [True] * 3
        pipe = client.pipeline()
        pipe.incr(key("n"))
        assert pipe.execute() == [3]
    failures = [e for e in captured.logs() if e.get("logger") == "telemetry_web.instrumentors"]
    assert [e["event"] for e in failures] == [
        "redis instrumentation failed in start_span; the operation itself was not affected "
        "(logged once)"
    ]
    count = metric_value(tel, "db_client_operation_duration_seconds_count",
                         db_system="redis", operation="SET", status="ok")  # fmt: skip
    assert count == 3
