"""``python -m benchmarks``: in-process and uvicorn+wrk benchmarks, printed as one table.

Progress goes to stderr; the table and summary go to stdout.
"""

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.apps import BARE, BUILDERS, FACTORIES, OTEL_STACK, TELEMETRY_WEB, Variant
from benchmarks.inprocess import InProcessResult, run_inprocess
from benchmarks.load import WRK_CONNECTIONS, WRK_THREADS, LoadResult, run_load, wrk_path

TARGET = 0.25  # telemetry-web overhead must stay within this fraction of the otel-stack's


@dataclass(frozen=True)
class Settings:
    inproc_rounds: int
    iterations: int
    warmup: int
    seconds: int
    rounds: int
    warmup_seconds: int


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="very short run (smoke test)")
    parser.add_argument("--seconds", type=int, help="seconds per wrk run (default 5)")
    parser.add_argument("--rounds", type=int, help="wrk rounds per variant (default 3)")
    parser.add_argument("--inproc-rounds", type=int, help="in-process rounds (default 7)")
    parser.add_argument("--iterations", type=int, help="requests per in-process round (2000)")
    args = parser.parse_args(argv)
    quick = args.quick

    def pick(value: int | None, quick_default: int, default: int) -> int:
        if value is not None:
            return value
        return quick_default if quick else default

    settings = Settings(
        inproc_rounds=pick(args.inproc_rounds, 3, 7),
        iterations=pick(args.iterations, 200, 2000),
        warmup=pick(None, 50, 500),
        seconds=pick(args.seconds, 1, 5),
        rounds=pick(args.rounds, 1, 3),
        warmup_seconds=1,
    )
    if min(settings.inproc_rounds, settings.iterations, settings.seconds, settings.rounds) < 1:
        parser.error("counts and durations must be >= 1")
    return settings


def build_variants() -> tuple[list[Variant], dict[str, str]]:
    """Build every app; a variant that fails to build is reported, not fatal."""
    variants: list[Variant] = []
    skipped: dict[str, str] = {}
    for name, build in BUILDERS.items():
        try:
            variants.append(build())
        except Exception as exc:  # e.g. telemetry_web not importable yet
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return variants, skipped


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
    """What a uvicorn-served app produced per request: root spans/log lines/counter increments."""
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
    "wrk roots/logs/incs = the same counts from the uvicorn servers, read when they exit.",
    "'!' = not exactly one per request (spans/req: not a whole multiple): something was lost.",
]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        # Variant names left-aligned, numbers right-aligned.
        pairs = enumerate(zip(cells, widths, strict=True))
        parts = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _overhead_fraction(tw: float | None, otel: float | None, bare: float | None) -> float | None:
    if tw is None or otel is None or bare is None or otel <= bare:
        return None
    return (tw - bare) / (otel - bare)


def _us_per_req(rps: float | None) -> float | None:
    return 1e6 / rps if rps else None


def summary(inproc: dict[str, InProcessResult], load: dict[str, LoadResult]) -> list[str]:
    def us(name: str) -> float | None:
        return inproc[name].median_us if name in inproc else None

    def wrk_us(name: str) -> float | None:
        return _us_per_req(load[name].median_rps) if name in load else None

    lines = []
    for label, get in (("in-process", us), ("uvicorn+wrk (from req/s)", wrk_us)):
        frac = _overhead_fraction(get(TELEMETRY_WEB), get(OTEL_STACK), get(BARE))
        if frac is None:
            verdict = "n/a"
        else:
            verdict = f"{frac:.2f} ({'meets' if frac <= TARGET else 'MISSES'} target <= {TARGET})"
        lines.append(f"telemetry-web overhead / otel-stack overhead, {label}: {verdict}")
    return lines


def run(settings: Settings) -> int:
    variants, skipped = build_variants()
    names = list(BUILDERS)
    results = asyncio.run(
        run_inprocess(variants, settings.inproc_rounds, settings.iterations, settings.warmup)
    )
    inproc = {r.name: r for r in results}

    load: dict[str, LoadResult] = {}
    wrk_missing = wrk_path() is None
    if not wrk_missing:
        factories = {n: FACTORIES[n] for n in names if n not in skipped}
        load = run_load(factories, settings.seconds, settings.rounds, settings.warmup_seconds)

    s = settings
    print(
        f"in-process: median of {s.inproc_rounds} rounds x {s.iterations} requests "
        f"(GET /api/users/42, ASGI called directly); per-request counts include "
        f"{s.warmup} warm-up requests"
    )
    if not wrk_missing:
        print(
            f"uvicorn: 1 worker, wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{s.seconds}s, "
            f"median of {s.rounds} rounds"
        )
    print()
    print(format_table(HEADERS, table_rows(names, inproc, load)))
    print()
    for line in summary(inproc, load):
        print(line)
    for line in LEGEND:
        print(line)

    failed = bool(skipped)
    for name, reason in skipped.items():
        print(f"{name}: skipped: {reason}")
    for res in load.values():
        for problem in res.problems:
            print(f"{res.name} (uvicorn): {problem}")
            failed = True
    if wrk_missing:
        print("wrk not found on PATH: uvicorn+wrk part skipped (install wrk: make services)")
        failed = failed or os.environ.get("CI") == "true"
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
