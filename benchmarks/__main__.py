"""``python -m benchmarks``: in-process and server+wrk benchmarks, printed as tables.

One block per framework (Starlette, FastAPI, Flask, Django): its bare app, telemetry-web and the
stack users assemble today, each overhead a ratio to the bare app measured in the same run; for
the ASGI frameworks also telemetry-web with traces sampled at 1% (the sampled-out cost). Next to
each median: the process CPU seconds per 10,000 requests, every thread counted, the background
queues drained (span export, log writing), so work moved off the request path still counts.
Served: uvicorn with uvloop and httptools and with asyncio and h11 (ASGI), gunicorn with two
sync workers (WSGI).
Progress goes to stderr; the tables and summary go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks import django_apps, flask_apps
from benchmarks.apps import (
    BARE,
    FACTORIES,
    FASTAPI_FACTORIES,
    OTEL_STACK,
    SAMPLED_OUT_RATIO,
    TELEMETRY_WEB,
    TELEMETRY_WEB_SAMPLED_OUT,
    Variant,
    builders,
)
from benchmarks.inprocess import InProcessResult, run_inprocess
from benchmarks.load import (
    GUNICORN_2,
    UVICORN_ASYNCIO,
    UVICORN_FAST,
    WRK_THREADS,
    LoadResult,
    ServerKind,
    has_module,
    run_load,
    wrk_path,
)
from benchmarks.wsgi_inprocess import run_wsgi_inprocess

# Issue 16's targets, each a same-run ratio.
TARGET = 0.125  # in-process overhead: at most this fraction of the otel-stack's (stretch 0.10)
CPU_TARGET = 0.20  # total CPU per request: at most this fraction of the otel-stack's
SAMPLED_OUT_TARGET = 0.5  # sampled-out overhead: at most this fraction of sampled-in
# Served throughput, at least this fraction of bare's, per server.
SERVED_TARGETS = {UVICORN_FAST.label: 0.60, UVICORN_ASYNCIO.label: 0.75, GUNICORN_2.label: 0.75}
NAMES = [BARE, TELEMETRY_WEB, OTEL_STACK]
ASGI_NAMES = [BARE, TELEMETRY_WEB, TELEMETRY_WEB_SAMPLED_OUT, OTEL_STACK]


@dataclass(frozen=True)
class Settings:
    inproc_rounds: int
    iterations: int
    warmup: int
    seconds: int
    rounds: int
    warmup_seconds: int
    frameworks: tuple[str, ...]


@dataclass(frozen=True)
class Framework:
    key: str
    title: str
    usual_stack: str  # what the otel-stack row is made of
    servers: tuple[ServerKind, ...]
    targets: dict[str, str]  # server entry point of each variant
    asgi: bool = False

    @property
    def names(self) -> list[str]:
        return ASGI_NAMES if self.asgi else NAMES


_ASGI_STACK = "OpenTelemetry ASGI middleware + starlette-exporter + structlog line"
FRAMEWORKS = {
    "starlette": Framework(
        "starlette",
        "Starlette (ASGI app called directly; uvicorn)",
        _ASGI_STACK,
        (UVICORN_FAST, UVICORN_ASYNCIO),
        FACTORIES,
        asgi=True,
    ),
    "fastapi": Framework(
        "fastapi",
        "FastAPI (ASGI app called directly; uvicorn)",
        _ASGI_STACK,
        (UVICORN_FAST, UVICORN_ASYNCIO),
        FASTAPI_FACTORIES,
        asgi=True,
    ),
    "flask": Framework(
        "flask",
        "Flask (WSGI app called directly; gunicorn)",
        flask_apps.USUAL_STACK,
        (GUNICORN_2,),
        flask_apps.TARGETS,
    ),
    "django": Framework(
        "django",
        "Django (WSGIHandler called directly; gunicorn)",
        django_apps.USUAL_STACK,
        (GUNICORN_2,),
        django_apps.TARGETS,
    ),
}


@dataclass
class Block:
    """One framework's results; ``load`` by server label, then by variant."""

    framework: Framework
    inproc: dict[str, InProcessResult] = field(default_factory=dict)
    load: dict[str, dict[str, LoadResult]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="very short run (smoke test)")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, help="wrk rounds per variant (default 3)")
    parser.add_argument("--inproc-rounds", type=int, help="in-process rounds (default 7)")
    parser.add_argument("--iterations", type=int, help="requests per in-process round (2000)")
    parser.add_argument(
        "--framework",
        action="append",
        choices=list(FRAMEWORKS),
        help="only this framework's block (repeatable; default: all)",
    )
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: int | None, quick_default: int, default: int) -> int:
        if value is not None:
            return value
        return quick_default if quick else default

    chosen = args.framework or list(FRAMEWORKS)
    settings = Settings(
        inproc_rounds=pick(args.inproc_rounds, 3, 7),
        iterations=pick(args.iterations, 200, 2000),
        warmup=pick(None, 50, 500),
        seconds=pick(args.seconds, 1, 5),
        rounds=pick(args.rounds, 1, 3),
        # A smoke test needs no server warm-up run: --quick skips it.
        warmup_seconds=pick(None, 0, 1),
        frameworks=tuple(k for k in FRAMEWORKS if k in chosen),
    )
    if min(settings.inproc_rounds, settings.iterations, settings.seconds, settings.rounds) < 1:
        parser.error("counts and durations must be >= 1")
    return settings


def build_variants(framework: str = "starlette") -> tuple[list[Variant], dict[str, str]]:
    """Build every ASGI app; a variant that fails to build is reported, not fatal."""
    variants: list[Variant] = []
    skipped: dict[str, str] = {}
    for name, build in builders(framework).items():
        try:
            variants.append(build())
        except Exception as exc:  # e.g. telemetry_web not importable yet
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return variants, skipped


def run_block(framework: Framework, s: Settings) -> Block:
    block = Block(framework)
    if framework.asgi:
        variants, block.skipped = build_variants(framework.key)
        results = asyncio.run(run_inprocess(variants, s.inproc_rounds, s.iterations, s.warmup))
    else:
        results, block.skipped = run_wsgi_inprocess(
            framework.key, NAMES, s.inproc_rounds, s.iterations, s.warmup
        )
    block.inproc = {r.name: r for r in results}
    if wrk_path() is not None:
        targets = {n: t for n, t in framework.targets.items() if n not in block.skipped}
        for server in framework.servers:
            if server is UVICORN_FAST and not (has_module("uvloop") and has_module("httptools")):
                continue  # reported as missing by problems()
            label = f"{framework.key} {server.short} "
            block.load[server.label] = run_load(
                targets, s.seconds, s.rounds, s.warmup_seconds, server, label
            )
    return block


def _count(produced: float, requests: int, exact_multiple: bool = False) -> str:
    """Per-request count; '!' flags any drop or duplicate, however small."""
    ok = produced % requests == 0 if exact_multiple else produced == requests
    per = produced / requests
    return f"{per:.2f}" if ok else f"{per:.4f}!"


def _ratio(num: float | None, den: float | None, fmt: str = "{:.2f}x") -> str:
    return fmt.format(num / den) if num is not None and den else "-"


def table_rows(names: Sequence[str], inproc: dict[str, InProcessResult]) -> list[list[str]]:
    bare = inproc.get(BARE)
    bare_us = bare.median_us if bare is not None else None
    bare_cpu = bare.median_cpu if bare is not None else None
    rows = []
    for name in names:
        row = [name]
        res = inproc.get(name)
        if res is None:
            rows.append(row + ["skipped"] + ["-"] * (len(HEADERS) - 2))
            continue
        us = res.median_us
        row += [f"{us:.1f}"]
        row += [f"{us - bare_us:+.1f}" if bare_us is not None else "-", _ratio(us, bare_us)]
        cpu = res.median_cpu
        row += [f"{cpu:.3f}" if cpu is not None else "-", _ratio(cpu, bare_cpu)]
        p, n = res.produced, res.requests
        if p is None:
            row += ["-"] * 4
        elif name == TELEMETRY_WEB_SAMPLED_OUT:  # a fraction of the requests, by design
            row += [
                f"{p.spans / n:.4f}",
                f"{p.root_spans / n:.4f}",
                _count(p.log_lines, n),
                _count(p.counter_increments, n),
            ]
        else:
            row += [
                _count(p.spans, n, exact_multiple=True),
                _count(p.root_spans, n),
                _count(p.log_lines, n),
                _count(p.counter_increments, n),
            ]
        row.append(str(n))
        rows.append(row)
    return rows


def _served_counts(res: LoadResult | None) -> str:
    """What a served app produced per request: root spans/log lines/counter increments."""
    if res is None or res.produced is None or not res.requests:
        return "-"
    p, n = res.produced, res.requests
    return "/".join(_count(v, n) for v in (p.root_spans, p.log_lines, p.counter_increments))


HEADERS = [
    "variant",
    "µs/req",
    "+µs",
    "x bare",
    "CPU s/10k",
    "x bare",
    "spans/req",
    "roots/req",
    "logs/req",
    "incs/req",
    "requests",
]
SERVED_HEADERS = ["variant", "req/s", "x bare", "roots/logs/incs"]


LEGEND = [
    "µs/req = median wall time per request; CPU s/10k = median process CPU seconds (all",
    "threads) per 10,000 requests, the background queues (span export, log writer) drained.",
    f"'{TELEMETRY_WEB_SAMPLED_OUT}' = telemetry-web with new traces sampled at a ratio of "
    f"{SAMPLED_OUT_RATIO} (metrics and the request log line still recorded).",
    "spans = all exported spans, roots = spans without a parent (one per request expected),",
    "logs = log lines written, incs = request-counter increments; per request, warm-up included.",
    "roots/logs/incs (served) = the same counts from the servers' apps, read when they exit.",
    "'!' = not exactly one per request (spans/req: not a whole multiple): something was lost.",
]


def format_table(headers: Sequence[str], sections: Sequence[tuple[str, list[list[str]]]]) -> str:
    """One aligned table; each section's title is a line of its own above its rows."""
    every = [list(headers), *(row for _title, rows in sections for row in rows)]
    widths = [max(len(r[i]) for r in every) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        # Variant names left-aligned, numbers right-aligned.
        pairs = enumerate(zip(cells, widths, strict=True))
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(headers), rule]
    for title, rows in sections:
        out.append(title)
        out += [line(r) for r in rows]
    return "\n".join(out)


def served_rows(names: Sequence[str], load: dict[str, LoadResult]) -> list[list[str]]:
    bare = load.get(BARE)
    bare_rps = bare.median_rps if bare is not None else None
    rows = []
    for name in names:
        res = load.get(name)
        if res is None:
            continue
        rps = res.median_rps
        rows.append(
            [
                name,
                f"{rps:,.0f}" if rps is not None else "-",
                _ratio(rps, bare_rps),
                _served_counts(res),
            ]
        )
    return rows


def _overhead_fraction(tw: float | None, otel: float | None, bare: float | None) -> float | None:
    if tw is None or otel is None or bare is None or otel <= bare:
        return None
    return (tw - bare) / (otel - bare)


def _name(block: Block) -> str:
    return block.framework.title.split()[0]


def _verdict(value: float | None, target: float, *, at_least: bool = False) -> str:
    if value is None:
        return "n/a"
    met = value >= target if at_least else value <= target
    sign = ">=" if at_least else "<="
    return f"{value:.3f} ({'meets' if met else 'MISSES'} {sign} {target})"


def summary(block: Block) -> list[str]:
    """The block's ratios, each against issue 16's target."""
    inproc = block.inproc

    def us(name: str) -> float | None:
        return inproc[name].median_us if name in inproc else None

    def cpu(name: str) -> float | None:
        return inproc[name].median_cpu if name in inproc else None

    name = _name(block)
    lines = []
    frac = _overhead_fraction(us(TELEMETRY_WEB), us(OTEL_STACK), us(BARE))
    lines.append(f"{name}: in-process overhead telemetry-web/otel-stack {_verdict(frac, TARGET)}")
    tw_cpu, otel_cpu = cpu(TELEMETRY_WEB), cpu(OTEL_STACK)
    total = tw_cpu / otel_cpu if tw_cpu is not None and otel_cpu else None
    cpu_frac = _overhead_fraction(tw_cpu, otel_cpu, cpu(BARE))
    only = f"; overhead only {cpu_frac:.3f}" if cpu_frac is not None else ""
    lines.append(
        f"{name}: CPU per request telemetry-web/otel-stack, total "
        f"{_verdict(total, CPU_TARGET)}{only}"
    )
    if TELEMETRY_WEB_SAMPLED_OUT in inproc:
        out = _overhead_fraction(us(TELEMETRY_WEB_SAMPLED_OUT), us(TELEMETRY_WEB), us(BARE))
        out_cpu = _overhead_fraction(cpu(TELEMETRY_WEB_SAMPLED_OUT), tw_cpu, cpu(BARE))
        shown = f"{out_cpu:.3f}" if out_cpu is not None else "n/a"
        lines.append(
            f"{name}: sampled-out/sampled-in overhead {_verdict(out, SAMPLED_OUT_TARGET)}; "
            f"CPU {shown}"
        )
    for server, load in block.load.items():
        bare = load.get(BARE)
        bare_rps = bare.median_rps if bare is not None else None
        ratios = {}
        for variant in (TELEMETRY_WEB, OTEL_STACK):
            res = load.get(variant)
            rps = res.median_rps if res is not None else None
            ratios[variant] = rps / bare_rps if rps is not None and bare_rps else None
        target = SERVED_TARGETS.get(server, 0.6)
        otel = ratios[OTEL_STACK]
        lines.append(
            f"{name}: {server} req/s vs bare: telemetry-web "
            f"{_verdict(ratios[TELEMETRY_WEB], target, at_least=True)}, otel-stack "
            + (f"{otel:.2f}x" if otel is not None else "n/a")
        )
    return lines


def report(blocks: Sequence[Block], s: Settings) -> None:
    print(
        f"in-process: median of {s.inproc_rounds} rounds x {s.iterations} requests "
        f"(GET /api/users/42, the app called directly; Flask and Django variants each in a "
        f"process of its own); per-request counts include {s.warmup} warm-up requests"
    )
    print()
    sections = [
        (
            f"[{b.framework.title}; otel-stack = {b.framework.usual_stack}]",
            table_rows(b.framework.names, b.inproc),
        )
        for b in blocks
    ]
    print(format_table(HEADERS, sections))
    served = [
        (f"[{_name(b)} under {server}]", served_rows(NAMES, load))
        for b in blocks
        for server, load in b.load.items()
    ]
    if served:
        warm = f" after a {s.warmup_seconds}s warm-up run" if s.warmup_seconds else ""
        print()
        print(
            f"served: wrk -t{WRK_THREADS} -d{s.seconds}s (-c32 for uvicorn, -c16 for gunicorn), "
            f"median of {s.rounds} rounds{warm}, variants alternating"
        )
        print(format_table(SERVED_HEADERS, served))
    print()
    for block in blocks:
        for line in summary(block):
            print(line)
    for line in LEGEND:
        print(line)


def problems(blocks: Sequence[Block]) -> list[str]:
    lines = []
    for block in blocks:
        name = _name(block)
        for variant, reason in block.skipped.items():
            lines.append(f"{name} {variant}: skipped: {reason}")
        for server, load in block.load.items():
            for res in load.values():
                for problem in res.problems:
                    lines.append(f"{name} {res.name} ({server}): {problem}")
        if (
            wrk_path() is not None
            and UVICORN_FAST in block.framework.servers
            and not (has_module("uvloop") and has_module("httptools"))
        ):
            lines.append(f"{name}: uvloop or httptools not installed: {UVICORN_FAST.label} skipped")
    return lines


def run(settings: Settings) -> int:
    blocks = [run_block(FRAMEWORKS[key], settings) for key in settings.frameworks]
    report(blocks, settings)
    failed = False
    for line in problems(blocks):
        print(line)
        failed = True
    if wrk_path() is None:
        print("wrk not found on PATH: server+wrk part skipped (install wrk: make services)")
        failed = failed or os.environ.get("CI") == "true"
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
