"""``python -m benchmarks``: in-process and server+wrk benchmarks, printed as one table.

One block per framework (Starlette, Flask, Django): its bare app, telemetry-web and the stack
users assemble today, each overhead a ratio to the bare app measured in the same run.
Progress goes to stderr; the table and summary go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks import django_apps, flask_apps
from benchmarks.apps import BARE, BUILDERS, FACTORIES, OTEL_STACK, TELEMETRY_WEB, Variant
from benchmarks.inprocess import InProcessResult, run_inprocess
from benchmarks.load import (
    GUNICORN,
    UVICORN,
    WRK_CONNECTIONS,
    WRK_THREADS,
    LoadResult,
    ServerKind,
    run_load,
    wrk_path,
)
from benchmarks.wsgi_inprocess import run_wsgi_inprocess

TARGET = 0.25  # telemetry-web overhead must stay within this fraction of the otel-stack's
NAMES = [BARE, TELEMETRY_WEB, OTEL_STACK]


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
    server: ServerKind
    targets: dict[str, str]  # server entry point of each variant


FRAMEWORKS = {
    "starlette": Framework(
        "starlette",
        "Starlette (ASGI app called directly; uvicorn)",
        "OpenTelemetry ASGI middleware + starlette-exporter + structlog line",
        UVICORN,
        FACTORIES,
    ),
    "flask": Framework(
        "flask",
        "Flask (WSGI app called directly; gunicorn)",
        flask_apps.USUAL_STACK,
        GUNICORN,
        flask_apps.TARGETS,
    ),
    "django": Framework(
        "django",
        "Django (WSGIHandler called directly; gunicorn)",
        django_apps.USUAL_STACK,
        GUNICORN,
        django_apps.TARGETS,
    ),
}


@dataclass
class Block:
    """One framework's results."""

    framework: Framework
    inproc: dict[str, InProcessResult] = field(default_factory=dict)
    load: dict[str, LoadResult] = field(default_factory=dict)
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


def build_variants() -> tuple[list[Variant], dict[str, str]]:
    """Build every ASGI app; a variant that fails to build is reported, not fatal."""
    variants: list[Variant] = []
    skipped: dict[str, str] = {}
    for name, build in BUILDERS.items():
        try:
            variants.append(build())
        except Exception as exc:  # e.g. telemetry_web not importable yet
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return variants, skipped


def run_block(framework: Framework, s: Settings) -> Block:
    block = Block(framework)
    if framework.key == "starlette":
        variants, block.skipped = build_variants()
        results = asyncio.run(run_inprocess(variants, s.inproc_rounds, s.iterations, s.warmup))
    else:
        results, block.skipped = run_wsgi_inprocess(
            framework.key, NAMES, s.inproc_rounds, s.iterations, s.warmup
        )
    block.inproc = {r.name: r for r in results}
    if wrk_path() is not None:
        targets = {n: t for n, t in framework.targets.items() if n not in block.skipped}
        label = f"{framework.key} " if framework.key != "starlette" else ""
        block.load = run_load(
            targets, s.seconds, s.rounds, s.warmup_seconds, framework.server, label
        )
    return block


def _count(produced: float, requests: int, exact_multiple: bool = False) -> str:
    """Per-request count; '!' flags any drop or duplicate, however small."""
    ok = produced % requests == 0 if exact_multiple else produced == requests
    per = produced / requests
    return f"{per:.2f}" if ok else f"{per:.4f}!"


def _ratio(num: float | None, den: float | None, fmt: str = "{:.2f}x") -> str:
    return fmt.format(num / den) if num is not None and den else "-"


def table_rows(
    names: Sequence[str],
    inproc: dict[str, InProcessResult],
    load: dict[str, LoadResult],
) -> list[list[str]]:
    bare_us = inproc[BARE].median_us if BARE in inproc else None
    bare_rps = load[BARE].median_rps if BARE in load else None
    rows = []
    for name in names:
        row = [name]
        res = inproc.get(name)
        if res is None:
            row += ["skipped"] + ["-"] * 7
        else:
            us = res.median_us
            row += [f"{us:.1f}"]
            row += [f"{us - bare_us:+.1f}" if bare_us is not None else "-", _ratio(us, bare_us)]
            p, n = res.produced, res.requests
            if p is None:
                row += ["-"] * 4
            else:
                row += [
                    _count(p.spans, n, exact_multiple=True),
                    _count(p.root_spans, n),
                    _count(p.log_lines, n),
                    _count(p.counter_increments, n),
                ]
            row.append(str(n))
        lres = load.get(name)
        rps = lres.median_rps if lres else None
        row += [f"{rps:,.0f}" if rps is not None else "-", _ratio(rps, bare_rps)]
        row.append(_served_counts(lres))
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
    "spans/req",
    "roots/req",
    "logs/req",
    "incs/req",
    "requests",
    "wrk req/s",
    "x bare",
    "wrk roots/logs/incs",
]


LEGEND = [
    "spans = all exported spans, roots = spans without a parent (one per request expected),",
    "logs = log lines written, incs = request-counter increments; per request, warm-up included.",
    "wrk roots/logs/incs = the same counts from the servers' apps, read when they exit.",
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


def _overhead_fraction(tw: float | None, otel: float | None, bare: float | None) -> float | None:
    if tw is None or otel is None or bare is None or otel <= bare:
        return None
    return (tw - bare) / (otel - bare)


def _us_per_req(rps: float | None) -> float | None:
    return 1e6 / rps if rps else None


def _name(block: Block) -> str:
    return block.framework.title.split()[0]


def summary(block: Block) -> str:
    """telemetry-web overhead / otel-stack overhead (in-process, served) and req/s ratios."""
    inproc, load = block.inproc, block.load

    def us(name: str) -> float | None:
        return inproc[name].median_us if name in inproc else None

    def wrk_us(name: str) -> float | None:
        return _us_per_req(load[name].median_rps) if name in load else None

    def rps(name: str) -> float | None:
        return load[name].median_rps if name in load else None

    parts = []
    server = block.framework.server.label.split()[0]
    for label, get in (("in-process", us), (f"{server} (from req/s)", wrk_us)):
        frac = _overhead_fraction(get(TELEMETRY_WEB), get(OTEL_STACK), get(BARE))
        if frac is None:
            verdict = "n/a"
        else:
            verdict = f"{frac:.2f} ({'meets' if frac <= TARGET else 'MISSES'} <= {TARGET})"
        parts.append(f"{label} {verdict}")
    ratios = ", ".join(f"{n} {_ratio(rps(n), rps(BARE))}" for n in (TELEMETRY_WEB, OTEL_STACK))
    name = _name(block)
    return (
        f"{name + ':':<10} telemetry-web/otel-stack overhead: {'; '.join(parts)}; "
        f"req/s vs bare: {ratios}"
    )


def report(blocks: Sequence[Block], s: Settings) -> None:
    print(
        f"in-process: median of {s.inproc_rounds} rounds x {s.iterations} requests "
        f"(GET /api/users/42, the app called directly; Flask and Django variants each in a "
        f"process of its own); per-request counts include {s.warmup} warm-up requests"
    )
    if wrk_path() is not None:
        servers = ", ".join(f"{_name(b)} under {b.framework.server.label}" for b in blocks)
        warm = f" after a {s.warmup_seconds}s warm-up run" if s.warmup_seconds else ""
        print(
            f"servers: {servers}; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{s.seconds}s, "
            f"median of {s.rounds} rounds{warm}, variants alternating"
        )
    print()
    sections = [
        (
            f"[{b.framework.title}; otel-stack = {b.framework.usual_stack}]",
            table_rows(NAMES, b.inproc, b.load),
        )
        for b in blocks
    ]
    print(format_table(HEADERS, sections))
    print()
    for block in blocks:
        print(summary(block))
    for line in LEGEND:
        print(line)


def problems(blocks: Sequence[Block]) -> list[str]:
    lines = []
    for block in blocks:
        name = _name(block)
        for variant, reason in block.skipped.items():
            lines.append(f"{name} {variant}: skipped: {reason}")
        server = block.framework.server.label.split()[0]
        for res in block.load.values():
            for problem in res.problems:
                lines.append(f"{name} {res.name} ({server}): {problem}")
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
