"""Every asset in integrations/ loads, parses and names only what telemetry-web serves.

Grafana dashboards and Prometheus rule files: each PromQL expression is parsed by the real
``promtool`` and names only series found in a real ``/metrics`` scrape of the sample app
(``sample_apps.starlette_app`` under uvicorn, one process and two workers, with traffic and a
health check) under the ``metrics.naming`` it was written for. Scrape configs are checked by
``promtool check config``, the Kubernetes pod-annotation job by a real Prometheus scraping the
sample app; Kubernetes manifests validate against the Kubernetes OpenAPI schema
(``kubernetes-validate``, offline) and their probes are answered by the sample app.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from telemetry_web.config import load_settings

from ._net import free_port
from .conftest import require_tool
from .servers.conftest import serve

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "integrations"
DASHBOARDS = sorted((ASSETS / "grafana").glob("*.json"))
DATASOURCES = ASSETS / "grafana" / "provisioning" / "datasources.yml"
GENERATOR = ASSETS / "grafana" / "build_dashboards.py"
SCRAPE_CONFIGS = sorted((ASSETS / "prometheus" / "scrape").glob("*.yml"))
MANIFESTS = sorted((ASSETS / "kubernetes").glob("*.yaml"))
NAMINGS = ("default", "otel")
# The Kubernetes release whose schema the manifests must satisfy (kubernetes-validate ships it).
KUBERNETES_VERSION = "1.37.0"
# Labels Prometheus adds to every series of a target (job, instance) or that the scrape
# configs here add (namespace, pod and the pod's own labels).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod"})
# Series Prometheus itself writes for every scraped target (a rule may alert on `up == 0`).
SCRAPE_SERIES = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
     "scrape_samples_post_metric_relabeling"}
)  # fmt: skip
# Grafana's interval variables, replaced by a duration before promtool parses an expression.
INTERVAL_VARIABLES = frozenset({"__rate_interval", "__interval", "__range", "__range_s"})


def _rule_files() -> list[Path]:
    """Every Prometheus rule file under integrations/prometheus/, whoever wrote it."""
    found = []
    for path in sorted((ASSETS / "prometheus").rglob("*.y*ml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "groups" in data:
            found.append(path)
    return found


RULE_FILES = _rule_files()


# --- PromQL: names a query uses --------------------------------------------------------------

FUNCTIONS = frozenset(
    [
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "exp",
        "floor",
        "histogram_avg",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_sum",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "mad_over_time",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_by_label",
        "sort_by_label_desc",
        "sort_desc",
        "sqrt",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
    ]
)
AGGREGATIONS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ]
)
KEYWORDS = frozenset(
    [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
        "start",
        "end",
    ]
)
TOKEN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      | (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)
      | (?P<number>0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_:]*)
      | (?P<punct>=~|!~|!=|==|<=|>=|[-+*/%^(){}\[\],=<>@:])
      | (?P<space>\s+|\#[^\n]*)""",
    re.VERBOSE,
)


@dataclass
class Selector:
    """One vector selector: its metric name and the label names its matchers use."""

    name: str
    labels: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of a PromQL expression, without spaces and comments."""
    found: list[tuple[str, str]] = []
    position = 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot tokenize {expr[position:]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            found.append((kind, match.group()))
        position = match.end()
    return found


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of an expression: metric names, not functions, keywords or labels.

    An identifier is a metric name unless it is called (followed by ``(``), is a keyword, sits
    inside ``{…}`` (a label name) or inside the parentheses after ``by``/``without``/``on``/
    ``ignoring``/``group_left``/``group_right`` (label names). ``{__name__="x"}`` names ``x``.
    """
    toks = tokens(expr)
    found: list[Selector] = []
    index = 0
    while index < len(toks):
        kind, text = toks[index]
        after = toks[index + 1][1] if index + 1 < len(toks) else ""
        if kind == "ident" and text in KEYWORDS and after == "(":
            index = _skip_group(toks, index + 1)  # by (a, b): label names
            continue
        if kind == "ident" and (
            (after == "(" and text in FUNCTIONS)
            or (text in AGGREGATIONS and after in {"(", "by", "without"})
        ):
            index += 1
            continue
        if kind == "ident" and after == "(":
            raise ValueError(f"unknown function {text!r} in {expr!r}")
        if kind == "ident" and text.lower() in KEYWORDS | {"inf", "nan"}:
            index += 1
            continue
        if kind == "ident":
            selector = Selector(text)
            index += 1
            if after == "{":
                index = _matchers(toks, index, selector)
            found.append(selector)
            continue
        if text == "{":  # {__name__="x", ...} without a name in front
            selector = Selector("")
            index = _matchers(toks, index, selector)
            found.append(selector)
            continue
        index += 1
    return found


def _skip_group(toks: list[tuple[str, str]], index: int) -> int:
    """Index after the parenthesised label list that starts at ``index``."""
    while toks[index][1] != ")":
        index += 1
    return index + 1


def _matchers(toks: list[tuple[str, str]], index: int, selector: Selector) -> int:
    """Reads ``{name op "value", ...}`` from the ``{`` at ``index``; returns the index after it."""
    assert toks[index][1] == "{"
    index += 1
    while toks[index][1] != "}":
        kind, text = toks[index]
        if kind in {"ident", "string"} and toks[index + 1][1] in {"=", "!=", "=~", "!~"}:
            label = text.strip("\"'`") if kind == "string" else text
            value = toks[index + 2][1]
            if label == "__name__":
                selector.name = value.strip("\"'`")
            else:
                selector.labels.add(label)
            index += 3
        else:
            index += 1
    return index + 1


def names(expr: str) -> set[str]:
    """The metric names an expression reads."""
    return {s.name for s in selectors(expr)}


def concrete(expr: str) -> str:
    """A Grafana query as Prometheus receives it: variables replaced by sample values."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return "5m" if name in INTERVAL_VARIABLES else "x"

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("http_requests_total", {"http_requests_total"}),
        ('sum by (route, le) (rate(x_bucket{route=~"/a"}[5m]))', {"x_bucket"}),
        ("a / on (instance) group_left (service) b", {"a", "b"}),
        ("sum without (pid) (a) > bool 0.5", {"a"}),
        ("rate(a[5m] offset 1h) or rate(b[1h30m] @ start())", {"a", "b"}),
        ('{__name__="up", job="x"}', {"up"}),
        ('a{"quoted.label"="v"} unless b', {"a", "b"}),
        ('label_replace(a, "dst", "$1", "src", "(.*)")', {"a"}),
        ("histogram_quantile(0.99, sum by (le) (rate(c[5m]))) > 1e-3", {"c"}),
        ("vector(1) + time() - max(a) by (route)", {"a"}),
        ('count_values("v", a) # a comment naming fake_metric\n', {"a"}),
        ("topk(5, sum by (r) (a)) and on () (b offset -5m)", {"a", "b"}),
        ("max_over_time(rate(job:a:rate5m[5m])[1h:1m])", {"job:a:rate5m"}),
    ],
)
def test_names_are_the_metric_names_of_an_expression(expr: str, expected: set[str]) -> None:
    """The tokenizer finds metric names, never functions, keywords, labels or strings."""
    assert names(expr) == expected


def test_selectors_keep_the_label_names_of_their_matchers() -> None:
    """Matcher label names stay with their selector; grouping labels belong to none."""
    found = selectors('sum by (check) (a{service=~"$s", instance!="i"}) / b{pid="1"}')
    assert [(s.name, s.labels) for s in found] == [("a", {"service", "instance"}), ("b", {"pid"})]


def test_concrete_replaces_grafana_variables() -> None:
    """Interval variables become durations and the others a label value."""
    assert concrete('rate(a{r=~"$route", s="${service:regex}"}[$__rate_interval])') == (
        'rate(a{r=~"x", s="x"}[5m])'
    )


# --- the assets' expressions -----------------------------------------------------------------


@dataclass(frozen=True)
class Expression:
    """One PromQL expression of an asset, with where it comes from."""

    where: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_expressions(dashboard: dict[str, Any]) -> list[Expression]:
    """Panel targets and, for ``label_values(<selector>, label)`` variables, the selector."""
    found = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            where = f"panel {panel['id']} {panel['title']!r} target {target['refId']}"
            found.append(Expression(where, concrete(target["expr"])))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query, re.DOTALL)
        assert match, f"variable {variable['name']}: {query!r} is not label_values(selector, l)"
        found.append(Expression(f"variable {variable['name']}", concrete(match.group(1))))
    return found


def rule_expressions(path: Path) -> list[Expression]:
    found = []
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            found.append(Expression(f"group {group['name']} rule {name}", rule["expr"]))
    return found


def recorded(path: Path) -> set[str]:
    """The series a rule file records (other rules may read them)."""
    groups = yaml.safe_load(path.read_text())["groups"]
    return {r["record"] for g in groups for r in g["rules"] if "record" in r}


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def dashboard_naming(dashboard: dict[str, Any]) -> str:
    tags = [t.removeprefix("naming:") for t in dashboard["tags"] if t.startswith("naming:")]
    assert len(tags) == 1, dashboard["tags"]
    assert tags[0] in NAMINGS, dashboard["tags"]
    naming: str = tags[0]
    return naming


def test_there_are_assets_to_check() -> None:
    """The checks below are not vacuous: each kind of asset is there."""
    assert [p.name for p in DASHBOARDS] == ["telemetry-web-otel.json", "telemetry-web.json"]
    assert RULE_FILES
    assert MANIFESTS
    assert DATASOURCES.exists()
    assert [p.name for p in SCRAPE_CONFIGS] == ["kubernetes-pods.yml", "static.yml"]


def test_promtool_parses_every_dashboard_and_rule_expression(tmp_path: Path) -> None:
    """Each expression, as a recording rule, passes ``promtool check rules``; a broken one fails."""
    promtool = require_tool("promtool")
    expressions = [e for p in DASHBOARDS for e in dashboard_expressions(load_dashboard(p))]
    expressions += [e for p in RULE_FILES for e in rule_expressions(p)]
    assert len(expressions) > 40
    rules = [{"record": f"asset:expression_{i}", "expr": e.expr} for i, e in enumerate(expressions)]
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "assets", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    failing = [expressions[int(n)].where for n in re.findall(r"expression_(\d+)", result.stderr)]
    assert result.returncode == 0, (failing, result.stdout + result.stderr)
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout

    rules.append({"record": "asset:broken", "expr": "sum by (route (rate(x[5m]))"})
    path.write_text(yaml.safe_dump({"groups": [{"name": "assets", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert "asset:broken" in result.stderr


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_accepts_the_rule_files(path: Path) -> None:
    """promtool, the Prometheus rule checker, accepts each rules file as it is."""
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- real scrapes of the sample app ----------------------------------------------------------


@dataclass
class Scrape:
    """The series names one naming's /metrics serves, and each one's label names."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    exemplar_labels: set[str] = field(default_factory=set)

    def add(self, text: str, *, openmetrics: bool = False) -> None:
        parse = openmetrics_families if openmetrics else text_string_to_metric_families
        for family in parse(text):
            # A family with no series yet (no drop has happened) still names what it will serve.
            for suffix in _SUFFIXES.get(family.type, ("",)):
                self.labels.setdefault(family.name + suffix, set())
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)
                if sample.exemplar is not None:
                    self.exemplar_labels.update(sample.exemplar.labels)


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}

SAMPLE_CONFIG = """\
metrics:
  naming: {naming}
health:
  checks:
    - {{name: disk, check: {{disk: {{path: /tmp, min_free: 1KB}}}}, interval: 1s}}
store:
  enabled: false
"""


def _traffic(base: str) -> None:
    """Requests of every kind: 200s on two routes, a 500, a 404, a POST; then the probes."""
    limits = httpx.Limits(max_keepalive_connections=0)  # spread over the workers
    with httpx.Client(base_url=base, limits=limits, timeout=10) as client:
        for _ in range(4):
            assert client.get("/api/users").status_code == 200
            assert client.get("/api/users/1").status_code == 200
            assert client.get("/api/fail").status_code == 500
            assert client.get("/no/such/page").status_code == 404
            assert client.post("/api/orders", json={"user_id": 1}).status_code == 201


def _scrape_when_complete(base: str, workers: int) -> str:
    """/metrics once every worker has a health check result and its process metrics."""
    deadline = time.monotonic() + 20
    while True:
        text = httpx.get(f"{base}/metrics", timeout=10).text
        status = re.findall(r"^health_check_status\{.*\} 1\.0$", text, re.MULTILINE)
        memory = re.findall(r"^process_resident_memory_bytes(\{.*\})? ", text, re.MULTILINE)
        if status and len(memory) >= workers:
            return text
        assert time.monotonic() < deadline, f"incomplete scrape:\n{text}"
        time.sleep(0.2)


@dataclass
class SampleApp:
    """The sample app served by uvicorn: its base URL and /metrics scrapes."""

    base: str
    text: str
    openmetrics: str


@pytest.fixture(scope="module")
def sample_apps() -> Iterator[dict[tuple[str, int], SampleApp]]:
    """The sample app under uvicorn for each naming, one process and two workers."""
    apps: dict[tuple[str, int], SampleApp] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        for naming in NAMINGS:
            config = Path(tmp) / f"telemetry-{naming}.yaml"
            config.write_text(SAMPLE_CONFIG.format(naming=naming))
            for workers in (1, 2):
                port = free_port()
                args = ["uvicorn", "sample_apps.starlette_app:app", "--port", str(port),
                        "--no-access-log", "--workers", str(workers)]  # fmt: skip
                stack.enter_context(serve(args, port, env={"TELEMETRY_CONFIG": str(config)}))
                base = f"http://127.0.0.1:{port}"
                _traffic(base)
                text = _scrape_when_complete(base, workers)
                accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
                openmetrics = httpx.get(f"{base}/metrics", headers=accept, timeout=10).text
                apps[naming, workers] = SampleApp(base, text, openmetrics)
        yield apps


@pytest.fixture(scope="module")
def scrapes(sample_apps: dict[tuple[str, int], SampleApp]) -> dict[str, Scrape]:
    """Per naming, what one process and two workers serve together (process metrics differ)."""
    found = {naming: Scrape() for naming in NAMINGS}
    for (naming, _workers), app in sample_apps.items():
        found[naming].add(app.text)
        found[naming].add(app.openmetrics, openmetrics=True)
    return found


@pytest.mark.server
def test_the_scrapes_hold_what_the_dashboards_are_about(scrapes: dict[str, Scrape]) -> None:
    """Both namings serve RED, health, drop and per-worker process series (pid label)."""
    default, otel = scrapes["default"].labels, scrapes["otel"].labels
    assert {"method", "route", "status", "service", "environment"} <= default["http_requests_total"]
    assert "http_requests_total" not in otel
    assert {"http_request_method", "http_route", "http_response_status_code"} <= otel[
        "http_server_request_duration_seconds_bucket"
    ]
    for labels in (default, otel):
        assert {"check", "service"} <= labels["health_check_status"]
        assert "pid" in labels["process_cpu_seconds"]  # two workers: a gauge per worker
        assert "process_cpu_seconds_total" in labels  # one process: prometheus-client's
        for dropped in ("telemetry_spans_dropped_total", "telemetry_log_events_dropped_total",
                        "telemetry_metrics_dropped_total"):  # fmt: skip
            assert dropped in labels


def _unknown(expression: Expression, scrape: Scrape, extra: set[str]) -> list[str]:
    problems = []
    for selector in selectors(expression.expr):
        if selector.name in extra:
            continue
        if selector.name not in scrape.labels:
            problems.append(f"{expression.where}: no series {selector.name!r}")
            continue
        served = scrape.labels[selector.name]
        if served:  # a family with series: its matchers use labels it has
            bad = selector.labels - served - TARGET_LABELS
            if bad:
                problems.append(f"{expression.where}: {selector.name} has no label {bad}")
    return problems


@pytest.mark.server
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_name_only_series_of_their_naming(
    path: Path, scrapes: dict[str, Scrape]
) -> None:
    """Every dashboard query names series (and matcher labels) its naming's scrape has."""
    dashboard = load_dashboard(path)
    scrape = scrapes[dashboard_naming(dashboard)]
    problems = [p for e in dashboard_expressions(dashboard) for p in _unknown(e, scrape, set())]
    assert problems == []


@pytest.mark.server
@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_files_name_only_series_of_one_naming(path: Path, scrapes: dict[str, Scrape]) -> None:
    """All of a rule file's expressions fit one naming's scrape (its own records allowed)."""
    extra = recorded(path) | {"ALERTS", "ALERTS_FOR_STATE"} | SCRAPE_SERIES
    problems = {
        naming: [p for e in rule_expressions(path) for p in _unknown(e, scrapes[naming], extra)]
        for naming in NAMINGS
    }
    assert [] in problems.values(), problems


# --- Grafana ---------------------------------------------------------------------------------


def test_dashboards_are_what_the_generator_writes() -> None:
    """The JSON files are current: build_dashboards.py writes exactly them."""
    spec = importlib.util.spec_from_file_location("build_dashboards", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    written = module.outputs()
    assert sorted(written) == DASHBOARDS
    for path, text in written.items():
        assert path.read_text() == text, f"{path.name} is stale: run build_dashboards.py"


def _overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])  # fmt: skip


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    """Unique panel ids, gridPos on the 24-column grid without overlaps, ${DS_PROMETHEUS}."""
    dashboard = load_dashboard(path)
    assert dashboard["schemaVersion"] >= 39
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    panels = list(_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) for i in ids)
    grids: list[dict[str, int]] = []
    for panel in panels:
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}
        assert all(type(v) is int for v in grid.values())
        assert grid["x"] >= 0, panel["title"]
        assert grid["w"] >= 1, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["y"] >= 0, panel["title"]
        assert grid["h"] >= 1, panel["title"]
        assert not any(_overlaps(grid, other) for other in grids), panel["title"]
        grids.append(grid)
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            assert panel["targets"]
            assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in panels:
        for target in panel.get("targets", []):
            used = set(re.findall(r"\$(\w+)", target["expr"])) - INTERVAL_VARIABLES
            assert used <= variables, (panel["title"], used - variables)
    titles = {p["title"] for p in panels}
    assert {"Request rate by route", "Error ratio (5xx) by route", "Health check status",
            "Spans dropped", "Log events dropped", "Metric samples dropped", "CPU",
            "Resident memory", "Latency heatmap (exemplars link to traces)"} <= titles  # fmt: skip


@pytest.mark.server
def test_heatmap_exemplars_link_by_the_label_our_histograms_carry(
    sample_apps: dict[tuple[str, int], SampleApp], scrapes: dict[str, Scrape]
) -> None:
    """The heatmap asks for exemplars and the data source links the label /metrics puts on them."""
    for path in DASHBOARDS:
        heatmap = next(p for p in load_dashboard(path)["panels"] if p["type"] == "heatmap")
        assert [t["exemplar"] for t in heatmap["targets"]] == [True]
        assert heatmap["targets"][0]["format"] == "heatmap"
    exemplar = re.search(
        r"^http_request_duration_seconds_bucket\{.*\} \S+ # \{(.*)\}",
        sample_apps["default", 1].openmetrics,
        re.MULTILINE,
    )
    assert exemplar is not None
    assert re.fullmatch(r'span_id="[0-9a-f]{16}",trace_id="[0-9a-f]{32}"', exemplar.group(1))
    assert scrapes["default"].exemplar_labels == scrapes["otel"].exemplar_labels
    assert scrapes["otel"].exemplar_labels == {"trace_id", "span_id"}
    prometheus = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert {d["name"] for d in destinations} == {"trace_id"}
    assert {d.get("datasourceUid") for d in destinations} == {"tempo", None}
    assert [d["url"] for d in destinations if "url" in d] == [
        "http://jaeger:16686/trace/$${__value.raw}"
    ]


# --- Prometheus scrape configs ---------------------------------------------------------------


def _with_file_sd(path: Path, targets_file: Path) -> dict[str, Any]:
    """The kubernetes-pods job with its pod discovery replaced by a file of the same labels."""
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
        job["file_sd_configs"] = [{"files": [str(targets_file)], "refresh_interval": "1s"}]
    return config


def test_promtool_accepts_the_scrape_configs(tmp_path: Path) -> None:
    """static.yml as it is, kubernetes-pods.yml with file discovery in place of Kubernetes'."""
    promtool = require_tool("promtool")
    checked = [ASSETS / "prometheus" / "scrape" / "static.yml"]
    pods = tmp_path / "kubernetes-pods.yml"
    pods.write_text(yaml.safe_dump(_with_file_sd(SCRAPE_CONFIGS[0], tmp_path / "pods.json")))
    (tmp_path / "pods.json").write_text("[]")
    for path in [*checked, pods]:
        result = subprocess.run([promtool, "check", "config", str(path)],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr


def _pod(ip_port: str, annotations: dict[str, str], name: str) -> dict[str, Any]:
    """A discovered pod as Kubernetes service discovery labels it."""
    labels = {f"__meta_kubernetes_pod_annotation_{k}": v for k, v in annotations.items()}
    labels |= {
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": name,
        "__meta_kubernetes_pod_label_app": "orders",
        "__meta_kubernetes_pod_container_port_number": ip_port.rsplit(":", 1)[1],
    }
    return {"targets": [ip_port], "labels": labels}


@pytest.mark.server
def test_prometheus_scrapes_annotated_pods_at_their_port_and_path(
    tmp_path: Path, sample_apps: dict[tuple[str, int], SampleApp]
) -> None:
    """A real Prometheus keeps the annotated pod, scrapes it at the annotated port and path
    (every worker's requests in one target), labels it, and drops pods not asking for it."""
    prometheus = require_tool("prometheus")
    app_port = int(sample_apps["default", 2].base.rsplit(":", 1)[1])
    annotated = {"prometheus_io_scrape": "true", "prometheus_io_port": str(app_port),
                 "prometheus_io_path": "/metrics"}  # fmt: skip
    pods = [
        # discovered once per declared container port: the annotation makes them one target
        _pod("127.0.0.1:9", annotated, "orders-a"),
        _pod("127.0.0.1:9090", annotated, "orders-a"),
        _pod("127.0.0.2:9", {}, "orders-b"),
        _pod("127.0.0.3:9", {"prometheus_io_scrape": "false"}, "orders-c"),
    ]
    (tmp_path / "pods.json").write_text(json.dumps(pods))
    config = _with_file_sd(SCRAPE_CONFIGS[0], tmp_path / "pods.json")
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        api = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                targets = httpx.get(f"{api}/targets", timeout=5).json()["data"]
                active = targets["activeTargets"]
                if active and active[0]["health"] == "up":
                    break
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.3)
        assert [t["scrapeUrl"] for t in active] == [f"http://127.0.0.1:{app_port}/metrics"]
        assert active[0]["labels"] == {
            "app": "orders", "instance": f"127.0.0.1:{app_port}", "job": "kubernetes-pods",
            "namespace": "shop", "pod": "orders-a",
        }  # fmt: skip
        dropped = {t["discoveredLabels"]["__meta_kubernetes_pod_name"]
                   for t in targets["droppedTargets"]}  # fmt: skip
        assert dropped == {"orders-b", "orders-c"}
        query = 'sum(http_requests_total{pod="orders-a", route="/api/fail"})'
        result = httpx.get(f"{api}/query", params={"query": query}, timeout=5).json()
        assert float(result["data"]["result"][0]["value"][1]) == 4.0  # both workers' requests
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


# --- Kubernetes ------------------------------------------------------------------------------


def _documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in MANIFESTS for d in yaml.safe_load_all(p.read_text()) if d]


def _containers() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (doc, container)
        for _path, doc in _documents()
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
    ]


def test_kubernetes_manifests_validate_against_the_openapi_schema() -> None:
    """Each document validates strictly (unknown fields fail) with the schemas shipped offline."""
    kinds = []
    for _path, doc in _documents():
        assert kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["ConfigMap", "Deployment", "Service"]
    _doc, container = _containers()[0]
    broken = json.loads(json.dumps(_containers()[0][0]))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = container["livenessProbe"]
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.server
def test_probes_and_scrape_annotations_point_at_what_the_package_serves(
    sample_apps: dict[tuple[str, int], SampleApp],
) -> None:
    """Liveness /health and readiness /ready (the defaults), answered 200 by the sample app;
    the scrape annotations name the container's port and the metrics path."""
    defaults = load_settings(use_env=False)
    health = defaults.health
    assert defaults.metrics.collectors.prometheus is not None
    metrics_path = defaults.metrics.collectors.prometheus.path
    for doc, container in _containers():
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", health.liveness_endpoint),
                            ("readinessProbe", health.readiness_endpoint),
                            ("startupProbe", health.liveness_endpoint)):  # fmt: skip
            assert container[probe]["httpGet"]["path"] == path
            assert container[probe]["httpGet"]["port"] in ports
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) in ports.values()
        assert annotations["prometheus.io/path"] == metrics_path
    for app in sample_apps.values():
        for path in (health.liveness_endpoint, health.readiness_endpoint):
            assert httpx.get(app.base + path, timeout=5).status_code == 200
    services = [d for _p, d in _documents() if d["kind"] == "Service"]
    assert [p["targetPort"] for s in services for p in s["spec"]["ports"]] == ["http"]


def test_deployment_configures_telemetry_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ConfigMap's telemetry.yaml and the container's OTEL_*/TELEMETRY_* variables load
    as the settings they mean, none of them ignored."""
    config_map = next(d for _p, d in _documents() if d["kind"] == "ConfigMap")
    config = tmp_path / "telemetry.yaml"
    config.write_text(config_map["data"]["telemetry.yaml"])
    _doc, container = _containers()[0]
    env: dict[str, str] = {}
    for item in container["env"]:  # as the kubelet expands them, with sample field values
        value = item.get("value", f"sample-{item['name'].lower()}")
        env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], value)
    assert env["TELEMETRY_CONFIG"].startswith(container["volumeMounts"][0]["mountPath"] + "/")
    env["TELEMETRY_CONFIG"] = str(config)
    with caplog.at_level(logging.WARNING):
        settings = load_settings(environ=env)
    assert [r.getMessage() for r in caplog.records] == []
    assert (settings.service, settings.environment) == ("orders", "production")
    assert settings.tracing.exporters.otlp is not None
    assert settings.tracing.exporters.otlp.endpoint == "http://otel-collector.observability:4318"
    assert settings.tracing.sampling.root is not None
    assert settings.tracing.sampling.root.rate == 0.1
    assert settings.tracing.resource_attributes == {
        "k8s.pod.name": "sample-k8s_pod_name",
        "k8s.namespace.name": "sample-k8s_namespace",
    }
    assert [c.name for c in settings.health.checks] == ["db", "cache"]
    assert settings.store.enabled == "false"
