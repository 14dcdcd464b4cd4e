"""``python -m benchmarks.db``: the cost per SQL statement and per Redis command, against the
real PostgreSQL and Redis, plain vs telemetry-web's instrumentors vs OpenTelemetry contrib's.

One process holds the three variants, each with its own engine and Redis client; they take
turns every hundred operations, so every figure is compared with the plain one measured at the
same moment. Every operation runs inside a parent span (a request's), so both instrumentors
make one span per statement or command (OpenTelemetry adds a ``connect`` span per checkout); the
spans each exported are counted. Progress goes to stderr; the table goes to stdout.

    python -m benchmarks.db            # about a minute
    python -m benchmarks.db --quick    # a few seconds, for a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

POSTGRES_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = "telemetry_web_bench"
BATCH = 100  # operations per parent span
PIPELINE_LENGTH = 10

PLAIN, OURS, OTEL = "plain", "telemetry-web", "otel"
VARIANTS = (PLAIN, OURS, OTEL)
TITLES = {
    PLAIN: "plain",
    OURS: "telemetry-web (SQLAlchemyInstrumentor, RedisInstrumentor)",
    OTEL: "OpenTelemetry contrib (opentelemetry-instrumentation-sqlalchemy, -redis)",
}
OPERATIONS = {
    "sql_statement": "SQLAlchemy: SELECT 1 on an open connection",
    "sql_checkout": "SQLAlchemy: checkout + SELECT 1 + checkin",
    "redis_command": "Redis: GET",
    "redis_pipeline": f"Redis: pipeline of {PIPELINE_LENGTH} GETs",
}


# --- the three variants, side by side in this process ---------------------------------------------


class _CountingExporter(SpanExporter):
    """A span exporter that only counts."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class _Variant:
    """One engine and one Redis client, instrumented one way, and how to run inside a span."""

    def __init__(self, name: str, engine: Any, client: Any) -> None:
        self.name = name
        self.engine = engine
        self.client = client
        self.exporter = _CountingExporter()
        self.parent: Callable[[], Any] = contextlib.nullcontext
        self.flush: Callable[[], None] = lambda: None
        # OpenTelemetry's SQLAlchemy instrumentor wraps Engine.connect for every engine in the
        # process; plain and telemetry-web run with OpenTelemetry's instrumentation suppressed,
        # which that wrapper honours (ours does not look at it).
        self.quiet = name != OTEL

    def exported(self) -> int:
        self.flush()
        return self.exporter.count


def _variants() -> list[_Variant]:
    import redis
    from sqlalchemy import create_engine

    # Every engine exists before OpenTelemetry's instrumentor wraps create_engine.
    made = {v: _Variant(v, create_engine(POSTGRES_URL, pool_size=2),
                        redis.Redis.from_url(REDIS_URL)) for v in VARIANTS}  # fmt: skip

    from telemetry_web import Telemetry
    from telemetry_web.instrumentors import RedisInstrumentor, SQLAlchemyInstrumentor

    ours = made[OURS]
    telemetry = Telemetry(
        {"logging": {"sinks": {"console": False}}},
        service="bench",
        span_exporters=[ours.exporter],
        use_env=False,
        set_global=False,
    )
    SQLAlchemyInstrumentor(telemetry=telemetry).instrument(engine=ours.engine)
    RedisInstrumentor(telemetry=telemetry).instrument(client=ours.client)
    our_tracer = telemetry.get_tracer("bench")
    ours.parent = lambda: our_tracer.start_as_current_span("request")
    ours.flush = telemetry.flush

    from opentelemetry.instrumentation.redis import RedisInstrumentor as OtelRedis
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor as OtelSQLAlchemy
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    otel = made[OTEL]
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(otel.exporter))
    # Its supported range stops before SQLAlchemy 2.1; the event hooks it uses are unchanged.
    OtelSQLAlchemy().instrument(engine=otel.engine, tracer_provider=provider, skip_dep_check=True)
    OtelRedis.instrument_client(otel.client, tracer_provider=provider)
    otel_tracer = provider.get_tracer("bench")
    otel.parent = lambda: otel_tracer.start_as_current_span("request")

    def flush_otel() -> None:
        provider.force_flush()

    otel.flush = flush_otel
    return [made[v] for v in VARIANTS]


def _operations(variant: _Variant) -> dict[str, Callable[[], None]]:
    from sqlalchemy import text

    select = text("SELECT 1")
    engine, client = variant.engine, variant.client
    held = engine.connect()

    def sql_statement() -> None:
        held.execute(select).scalar()

    def sql_checkout() -> None:
        with engine.connect() as conn:
            conn.execute(select).scalar()

    def redis_command() -> None:
        client.get(KEY)

    def redis_pipeline() -> None:
        pipe = client.pipeline(transaction=False)
        for _ in range(PIPELINE_LENGTH):
            pipe.get(KEY)
        pipe.execute()

    return {"sql_statement": sql_statement, "sql_checkout": sql_checkout,
            "redis_command": redis_command, "redis_pipeline": redis_pipeline}  # fmt: skip


def _batch(variant: _Variant, operation: Callable[[], None], count: int) -> tuple[float, float]:
    """(wall, CPU of this thread) seconds for ``count`` calls inside one parent span."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    quiet = suppress_instrumentation() if variant.quiet else contextlib.nullcontext()
    with quiet, variant.parent():
        wall, cpu = time.perf_counter(), time.thread_time()
        for _ in range(count):
            operation()
        return time.perf_counter() - wall, time.thread_time() - cpu


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def run(rounds: int, operations: int, warmup: int) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per variant and operation, the result of each round. Within a round the variants take
    turns batch by batch (in rotating order), so a busy moment of the machine hits them alike."""
    variants = _variants()
    variants[0].client.set(KEY, "x")
    ops = {v.name: _operations(v) for v in variants}
    collected: dict[str, dict[str, list[dict[str, Any]]]] = {
        v: {op: [] for op in OPERATIONS} for v in VARIANTS
    }
    for name in OPERATIONS:
        for variant in variants:
            _batch(variant, ops[variant.name][name], warmup)
    for index in range(rounds):
        print(f"round {index + 1}/{rounds}", file=sys.stderr, flush=True)
        for name in OPERATIONS:
            totals = {v.name: [0.0, 0.0] for v in variants}
            spans_before = {v.name: v.exported() for v in variants}
            for turn in range(-(-operations // BATCH)):
                shift = turn % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    wall, cpu = _batch(variant, ops[variant.name][name], BATCH)
                    totals[variant.name][0] += wall
                    totals[variant.name][1] += cpu
            done = -(-operations // BATCH) * BATCH
            for variant in variants:
                spans = variant.exported() - spans_before[variant.name]
                parents = done // BATCH if variant.name != PLAIN else 0
                wall, cpu = totals[variant.name]
                collected[variant.name][name].append({
                    "us": wall / done * 1e6,
                    "cpu_us": cpu / done * 1e6,
                    "spans_per_op": (spans - parents) / done,
                })  # fmt: skip
    for variant in variants:
        variant.engine.dispose()
        variant.client.close()
    return collected


def render(collected: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """One block per operation: CPU µs per operation (all threads of the process, exports
    included) and wall-clock µs, each the median of the rounds, with the ratio to plain; then
    telemetry-web's overhead as a fraction of OpenTelemetry's."""
    lines = [
        "| operation | variant | CPU µs/op | CPU overhead | CPU vs plain | wall µs/op "
        "| wall vs plain | spans/op |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    cpu_summary: list[str] = []
    wall_summary: list[str] = []
    for op, title in OPERATIONS.items():
        cpu = {v: statistics.median(r["cpu_us"] for r in collected[v][op]) for v in VARIANTS}
        wall = {v: statistics.median(r["us"] for r in collected[v][op]) for v in VARIANTS}
        for i, variant in enumerate(VARIANTS):
            spans = statistics.median(r["spans_per_op"] for r in collected[variant][op])
            overhead = "" if variant == PLAIN else f"+{cpu[variant] - cpu[PLAIN]:.1f} µs"
            lines.append(
                f"| {title if i == 0 else ''} | {variant} | {cpu[variant]:.1f} | {overhead} | "
                f"{cpu[variant] / cpu[PLAIN]:.2f}x | {wall[variant]:.1f} | "
                f"{wall[variant] / wall[PLAIN]:.2f}x | {spans:.2f} |"
            )
        for figures, summary in ((cpu, cpu_summary), (wall, wall_summary)):
            ours, otel = figures[OURS] - figures[PLAIN], figures[OTEL] - figures[PLAIN]
            summary.append(f"{ours / otel:.2f}" if otel > 0 else "n/a")
    lines.append("")
    lines.append("telemetry-web's overhead as a fraction of OpenTelemetry contrib's (CPU, wall):")
    for title, cpu_ratio, wall_ratio in zip(
        OPERATIONS.values(), cpu_summary, wall_summary, strict=True
    ):
        lines.append(f"  {title}: {cpu_ratio}, {wall_ratio}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.db",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="few rounds, for a smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--operations", type=int, default=None, help="per round and operation")
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args(argv)
    for name, host, port in [("PostgreSQL", "127.0.0.1", 5432), ("Redis", "127.0.0.1", 6379)]:
        if not _reachable(host, port):
            print(f"benchmarks.db: {name} is not reachable on {host}:{port}; "
                  "`make services` starts it", file=sys.stderr)  # fmt: skip
            return 2
    rounds = args.rounds or (2 if args.quick else 7)
    operations = args.operations or (300 if args.quick else 3000)
    warmup = min(args.warmup, operations)
    collected = run(rounds, operations, warmup)
    print(
        f"\n{rounds} rounds of {operations} operations per variant and operation (median of "
        f"rounds; the variants take turns every {BATCH}). CPU is this thread's time: the "
        "steadier figure on a shared machine (the round trip itself is wall-clock only).\n"
    )
    for variant in VARIANTS:
        print(f"- {variant}: {TITLES[variant]}")
    print()
    print(render(collected))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
