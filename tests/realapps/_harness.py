"""The real-app harness: run an unchanged open-source app bare and under ``telemetry run``, send
the same traffic to both, and check what telemetry-web reports against the app's own router.

Each app lives in its own virtualenv, ``.venv-realapps/<name>`` (``make realapps``, from
``tests/realapps/requirements/<name>.txt``), holding the app, its server and telemetry-web
(editable). The launcher is that venv's ``telemetry run --``. Ground truth comes from
``groundtruth/sitecustomize.py``, put on the app's ``PYTHONPATH``: it records, in the live
process, the route the framework's router matched for each request, keyed by the
``X-Request-ID`` the harness sends (``realapps-<index>``, valid, so telemetry-web keeps it).

Checks of the launched run (:func:`check_all`), each reported as a table of what is wrong:

(a) ``http_requests_total`` rows ``(method, route, status)`` against the ground truth rows
    (status as the client saw it; ``<unmatched>`` where no route matched): >= 95% exact.
(b) every ``/metrics`` scrape (new connection each: any worker) shows the total of all workers.
(c) no route label is a raw path or holds a concrete path segment that no template has.
(d) every request: exactly one JSON request log line on stdout with its request id and a trace
    id, and exactly one server span with that trace id in ``./.telemetry/telemetry.db``.
(e) statuses, headers and bodies equal to the bare app's (minus the documented exclusions), and
    the router took the same decisions with and without the launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests._metrics import Scrape
from tests._net import free_port
from tests.launcher.conftest import Server, launch

__all__ = [
    "Exchange",
    "Normalizer",
    "Req",
    "Run",
    "app_venv",
    "check_all",
    "free_port",
    "run_app",
]

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / ".venv-realapps"
GROUND_TRUTH_PATH = Path(__file__).resolve().parent / "groundtruth"
UNMATCHED = "<unmatched>"
ROWS_EXACT_MIN = 0.95
SCRAPES = 6
#: Headers that differ between any two runs of the same app, launcher or not: the clock, the
#: server banner, and the request id that telemetry-web echoes (the bare app has none).
ALWAYS_EXCLUDED_HEADERS = frozenset({"date", "server", "x-request-id"})
#: Each run listens on its own free port, which absolute URLs (Location, links) carry.
_LOOPBACK = re.compile(r"127\.0\.0\.1:\d+")
_LOOPBACK_BYTES = re.compile(rb"127\.0\.0\.1:\d+")


def app_venv(name: str) -> Path:
    """``.venv-realapps/<name>/bin``; missing: a failure under CI, else a skip with the reason."""
    bin_dir = VENVS / name / "bin"
    if not (bin_dir / "telemetry").exists():
        message = f"{bin_dir.parent} is missing: run `make realapps` (it builds one venv per app)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return bin_dir


@dataclass
class Req:
    """One request of the traffic mix; ``headers`` may read the client's cookies (CSRF)."""

    method: str
    path: str
    json: object = None
    data: dict[str, str] | None = None
    headers: dict[str, str] | Callable[[httpx.Client], dict[str, str]] | None = None


@dataclass
class Exchange:
    index: int
    rid: str
    method: str
    path: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Normalizer:
    """What the app itself varies per request: excluded from the bare/launched comparison."""

    headers: frozenset[str] = frozenset()
    #: cookie names whose values are per-session or per-request (CSRF tokens, session ids)
    cookies: frozenset[str] = frozenset()
    #: headers whose comma-separated items come in an order the app does not fix
    unordered: frozenset[str] = frozenset()
    #: (regex, replacement) applied to bodies (timestamps, tokens, timings)
    body: Sequence[tuple[str, str]] = ()

    def header_items(self, exchange: Exchange) -> list[tuple[str, str]]:
        items = []
        for name, value in exchange.headers:
            if name in ALWAYS_EXCLUDED_HEADERS or name in self.headers:
                continue
            value = _LOOPBACK.sub("127.0.0.1:<port>", value)
            if name in self.unordered:
                value = ", ".join(sorted(item.strip() for item in value.split(",")))
            if name == "set-cookie":
                cookie, _, rest = value.partition("=")
                if cookie in self.cookies:
                    value = cookie + "=<varies>;" + rest.partition(";")[2]
                    value = re.sub(r"(?i)expires=[^;]+", "expires=<clock>", value)
            items.append((name, value))
        return sorted(items)

    def body_of(self, exchange: Exchange) -> bytes:
        body = _LOOPBACK_BYTES.sub(b"127.0.0.1:<port>", exchange.body)
        for pattern, replacement in self.body:
            body = re.sub(pattern.encode(), replacement.encode(), body)
        return body


@dataclass
class Run:
    """What one run of the app produced."""

    exchanges: list[Exchange]
    ground_truth: dict[str, str]  # rid -> template (no entry: unmatched)
    ground_truth_pids: set[int]
    scrapes: list[str] = field(default_factory=list)
    output: str = ""
    store: Path | None = None


def send(port: int, traffic: Sequence[Req]) -> list[Exchange]:
    """Send ``traffic`` in order, each request on a new connection (any worker answers)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    exchanges = []
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=20, follow_redirects=False
    ) as client:
        for index, req in enumerate(traffic):
            rid = f"realapps-{index:03d}"
            extra = req.headers(client) if callable(req.headers) else (req.headers or {})
            request = client.build_request(
                req.method, req.path, json=req.json, data=req.data,
                headers={"X-Request-ID": rid, **extra},
            )  # fmt: skip
            response = client.send(request, stream=True)
            try:
                body = response.read()  # streamed bodies are read to their last chunk
            finally:
                response.close()
            exchanges.append(
                Exchange(
                    index,
                    rid,
                    req.method,
                    req.path,
                    response.status_code,
                    [(k.decode().lower(), v.decode("latin-1")) for k, v in response.headers.raw],
                    body,
                )
            )
    return exchanges


def scrape(port: int) -> str:
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(limits=limits, timeout=20) as client:
        return client.get(f"http://127.0.0.1:{port}/metrics").text


def read_ground_truth(directory: Path) -> tuple[dict[str, str], set[int]]:
    routes: dict[str, str] = {}
    pids: set[int] = set()
    for path in sorted(directory.glob("routes-*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            routes.setdefault(record["rid"], record["route"])
            pids.add(record["pid"])
    return routes, pids


@contextlib.contextmanager
def _served(
    command: Sequence[str], cwd: Path, port: int, bin_dir: Path, ground_truth: Path,
    env: dict[str, str] | None,
) -> Iterator[Server]:  # fmt: skip
    ground_truth.mkdir(parents=True, exist_ok=True)
    full_env = {
        "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join([str(GROUND_TRUTH_PATH), str(cwd)]),
        "REALAPPS_GROUND_TRUTH": str(ground_truth),
        "VIRTUAL_ENV": str(bin_dir.parent),
        **(env or {}),
    }
    with launch(command, cwd, port, env=full_env) as server:
        yield server


def run_app(
    *,
    name: str,
    command: Callable[[int], list[str]],
    prepared: Path,
    workdir: Path,
    traffic: Sequence[Req],
    env: dict[str, str] | None = None,
    launched: bool,
    warm_up: Callable[[int], None] | None = None,
) -> Run:
    """Copy ``prepared`` to ``workdir``, serve ``command(port)`` there (under the venv's
    ``telemetry run --`` when ``launched``), send ``traffic``; scrape /metrics when launched."""
    bin_dir = app_venv(name)
    shutil.copytree(prepared, workdir)
    port = free_port()
    full = command(port)
    if launched:
        full = [str(bin_dir / "telemetry"), "run", "--", *full]
    ground_truth = workdir / ".ground-truth"
    with _served(full, workdir, port, bin_dir, ground_truth, env) as server:
        if warm_up is not None:
            warm_up(port)
        exchanges = send(port, traffic)
        scrapes = [scrape(port) for _ in range(SCRAPES)] if launched else []
        routes, pids = read_ground_truth(ground_truth)
    store = workdir / ".telemetry" / "telemetry.db"
    return Run(exchanges, routes, pids, scrapes, server.text(), store)


# --- checks ----------------------------------------------------------------------------------


@dataclass
class Report:
    """Each check's verdict and the table that explains a failure."""

    app: str
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, summary: str, details: Iterable[str] = ()) -> None:
        self.lines.append(f"({name}) {'ok  ' if ok else 'FAIL'} {summary}")
        if not ok:
            self.failures.append(f"({name}) {summary}\n" + "\n".join(details))

    def text(self) -> str:
        return f"{self.app}\n" + "\n".join(self.lines)


def expected_rows(
    run: Run, template: Callable[[str], str] = lambda route: route
) -> Counter[tuple[str, str, str]]:
    rows: Counter[tuple[str, str, str]] = Counter()
    for exchange in run.exchanges:
        route = run.ground_truth.get(exchange.rid)
        label = template(route) if route is not None else UNMATCHED
        rows[(exchange.method, label, str(exchange.status))] += 1
    return rows


def metric_rows(text: str) -> Counter[tuple[str, str, str]]:
    rows: Counter[tuple[str, str, str]] = Counter()
    for labels, value in Scrape.parse(text).series("http_requests_total"):
        key = (labels.get("method", ""), labels.get("route", ""), labels.get("status", ""))
        rows[key] += int(value)
    return rows


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    cells = [list(map(str, header)), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) for row in cells
    ]


#: (method, route, status) -> requests
Rows = Counter[tuple[str, str, str]]


def check_rows(report: Report, expected: Rows, actual: Rows) -> None:
    keys = sorted(set(expected) | set(actual))
    exact = [k for k in keys if expected[k] == actual[k]]
    wrong = [(*k, expected[k], actual[k]) for k in keys if expected[k] != actual[k]]
    share = len(exact) / len(keys) if keys else 0.0
    report.check(
        "a", share >= ROWS_EXACT_MIN and bool(keys),
        f"rows exact {len(exact)}/{len(keys)} ({share:.0%}; >= {ROWS_EXACT_MIN:.0%} needed)",
        _table(("method", "route", "status", "expected", "in /metrics"), wrong),
    )  # fmt: skip


def check_scrapes(report: Report, scrapes: Sequence[str], sent: int, pids: set[int]) -> None:
    totals = [sum(metric_rows(text).values()) for text in scrapes]
    distinct = {tuple(sorted(metric_rows(text).items())) for text in scrapes}
    ok = all(total == sent for total in totals) and len(distinct) == 1
    report.check(
        "b", ok,
        f"{len(scrapes)} scrapes total {totals} of {sent} sent; requests served by "
        f"{len(pids)} process(es)",
        [f"  scrape {i}: {total} requests counted" for i, total in enumerate(totals)],
    )  # fmt: skip


_PLACEHOLDER = re.compile(r"[{<\[(]")


def check_no_raw_paths(report: Report, run: Run, actual: Rows, templates: set[str]) -> None:
    static_segments = {
        segment
        for template in templates
        for segment in template.split("/")
        if segment and not _PLACEHOLDER.search(segment)
    }
    sent_paths = {e.path.partition("?")[0] for e in run.exchanges}
    bad = []
    for route in sorted({key[1] for key in actual}):
        if route == UNMATCHED or route in templates:
            continue
        concrete = [
            s for s in route.split("/") if s and not _PLACEHOLDER.search(s)
            and s not in static_segments
        ]  # fmt: skip
        if route in sent_paths or concrete:
            bad.append((route, ", ".join(concrete) or "(a path sent as is)"))
    report.check(
        "c", not bad, f"{len(bad)} route label(s) with raw path segments",
        _table(("route label", "segments in no template"), bad),
    )  # fmt: skip


def check_spans_and_logs(report: Report, run: Run) -> None:
    lines: dict[str, list[dict[str, object]]] = {}
    for raw in run.output.splitlines():
        start = raw.find("{")
        if start < 0 or '"event": "request"' not in raw:
            continue
        with contextlib.suppress(ValueError):
            line = json.loads(raw[start:])
            lines.setdefault(str(line.get("request_id")), []).append(line)
    spans: Counter[str] = Counter()
    if run.store is not None and run.store.exists():
        with contextlib.closing(sqlite3.connect(run.store)) as db:
            for (trace_id,) in db.execute("SELECT trace_id FROM spans WHERE kind = 'server'"):
                spans[trace_id] += 1
    problems = []
    for exchange in run.exchanges:
        found = lines.get(exchange.rid, [])
        trace = str(found[0].get("trace_id", "")) if len(found) == 1 else ""
        where = (exchange.rid, exchange.method, exchange.path)
        if len(found) != 1:
            problems.append((*where, f"{len(found)} log lines", "-"))
        elif not re.fullmatch(r"[0-9a-f]{32}", trace):
            problems.append((*where, f"trace_id {trace!r}", "-"))
        elif spans[trace] != 1:
            problems.append((*where, "1 log line", f"{spans[trace]} spans"))
    store = "" if run.store is not None and run.store.exists() else " (no store file)"
    report.check(
        "d", not problems,
        f"{len(run.exchanges) - len(problems)}/{len(run.exchanges)} requests with one log line "
        f"and one span; {sum(spans.values())} server spans stored{store}",
        _table(("request id", "method", "path", "log", "spans"), problems),
    )  # fmt: skip


def check_same_as_bare(report: Report, bare: Run, launched: Run, normalizer: Normalizer) -> None:
    diffs: list[tuple[int, str, str, object, object]] = []
    for b, lx in zip(bare.exchanges, launched.exchanges, strict=True):
        where = f"{b.method} {b.path}"
        if b.status != lx.status:
            diffs.append((b.index, where, "status", b.status, lx.status))
        bh, lh = normalizer.header_items(b), normalizer.header_items(lx)
        if bh != lh:
            only_b = sorted(set(bh) - set(lh))
            only_l = sorted(set(lh) - set(bh))
            diffs.append((b.index, where, "headers", only_b, only_l))
        bb, lb = normalizer.body_of(b), normalizer.body_of(lx)
        if bb != lb:
            at = next(
                (i for i, (x, y) in enumerate(zip(bb, lb, strict=False)) if x != y),
                min(len(bb), len(lb)),
            )
            diffs.append((b.index, where, f"body @{at}", bb[at : at + 40], lb[at : at + 40]))
    routing = [
        (b.index, f"{b.method} {b.path}", "router", bare.ground_truth.get(b.rid, UNMATCHED),
         launched.ground_truth.get(b.rid, UNMATCHED))
        for b in bare.exchanges
        if bare.ground_truth.get(b.rid) != launched.ground_truth.get(b.rid)
    ]  # fmt: skip
    diffs.extend(routing)
    report.check(
        "e", not diffs,
        f"{len(bare.exchanges) - len({d[0] for d in diffs})}/{len(bare.exchanges)} responses "
        "identical to the bare app's",
        _table(("#", "request", "what", "bare", "launched"), diffs),
    )  # fmt: skip


def check_all(
    app: str,
    bare: Run,
    launched: Run,
    normalizer: Normalizer,
    template: Callable[[str], str] = lambda route: route,
) -> Report:
    """Run checks (a)-(e) and return the report (its ``failures`` empty when all pass)."""
    report = Report(app)
    expected = expected_rows(launched, template)
    actual = metric_rows(launched.scrapes[-1]) if launched.scrapes else Counter()
    check_rows(report, expected, actual)
    check_scrapes(report, launched.scrapes, len(launched.exchanges), launched.ground_truth_pids)
    templates = {template(route) for route in launched.ground_truth.values()}
    check_no_raw_paths(report, launched, actual, templates)
    check_spans_and_logs(report, launched)
    check_same_as_bare(report, bare, launched, normalizer)
    _save(report)
    return report


def _save(report: Report) -> None:
    """Append the summary to ``$REALAPPS_REPORT`` (a results table across apps), if set."""
    path = os.environ.get("REALAPPS_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(report.text() + "\n\n")


def assert_report(report: Report) -> None:
    print(report.text())
    assert not report.failures, report.text() + "\n\n" + "\n\n".join(report.failures)
