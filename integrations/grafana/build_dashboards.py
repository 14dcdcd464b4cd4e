"""Writes the Grafana dashboards in this folder (``.venv/bin/python build_dashboards.py``).

One dashboard per ``metrics.naming`` (``telemetry-web.json`` for the default names,
``telemetry-web-otel.json`` for the OpenTelemetry ones), built from the names in
``telemetry_web.semconv`` so the two cannot drift apart; tests/test_integration_assets.py
checks that the files are what this script writes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telemetry_web import semconv as sc

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
RATE = "$__rate_interval"
# Grafana's current dashboard schema (Grafana 11.x).
SCHEMA_VERSION = 39


@dataclass(frozen=True)
class Naming:
    """The HTTP metric and label names of one ``metrics.naming``."""

    key: str
    title: str
    requests: str  # a counter of requests (or the duration histogram's _count)
    duration: str  # the duration histogram, without _bucket
    in_progress: str
    in_progress_by: str  # a label of the in-progress gauge to break it down by
    method: str
    route: str
    status: str


NAMINGS = (
    Naming(
        key="default",
        title="telemetry-web",
        requests=sc.HTTP_REQUESTS_TOTAL,
        duration=sc.HTTP_REQUEST_DURATION,
        in_progress=sc.HTTP_REQUESTS_IN_PROGRESS,
        in_progress_by=sc.LABEL_ROUTE,
        method=sc.LABEL_METHOD,
        route=sc.LABEL_ROUTE,
        status=sc.LABEL_STATUS,
    ),
    Naming(
        key="otel",
        title="telemetry-web (OpenTelemetry names)",
        requests=f"{sc.OTEL_HTTP_SERVER_DURATION}_count",
        duration=sc.OTEL_HTTP_SERVER_DURATION,
        in_progress=sc.OTEL_HTTP_SERVER_ACTIVE,
        in_progress_by=sc.OTEL_LABEL_METHOD,
        method=sc.OTEL_LABEL_METHOD,
        route=sc.OTEL_LABEL_ROUTE,
        status=sc.OTEL_LABEL_STATUS,
    ),
)

SERVICE = f'{sc.LABEL_SERVICE}=~"$service", {sc.LABEL_ENVIRONMENT}=~"$environment"'
INSTANCE = 'instance=~"$instance"'


def target(expr: str, legend: str, ref: str = "A", **extra: Any) -> dict[str, Any]:
    return {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend, **extra}


def panel(kind: str, title: str, grid: tuple[int, int, int, int], targets: list[dict[str, Any]],
          unit: str = "short", description: str = "", **extra: Any) -> dict[str, Any]:  # fmt: skip
    x, y, w, h = grid
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": targets,
        **extra,
    }  # fmt: skip


def row(title: str, y: int) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}  # fmt: skip


def red_panels(n: Naming, y: int) -> list[dict[str, Any]]:
    sel = f'{SERVICE}, {INSTANCE}, {n.route}=~"$route"'
    total = f"sum by ({n.route}) (rate({n.requests}{{{sel}}}[{RATE}]))"
    errors = f'sum by ({n.route}) (rate({n.requests}{{{sel}, {n.status}=~"5.."}}[{RATE}]))'
    in_progress_sel = SERVICE + ", " + INSTANCE
    if n.in_progress_by == n.route:
        in_progress_sel += f', {n.route}=~"$route"'
    return [
        row("Requests (rate, errors, duration per route)", y),
        panel("timeseries", "Request rate by route", (0, y + 1, 12, 8),
              [target(total, f"{{{{{n.route}}}}}")], unit="reqps"),
        panel("timeseries", "Error ratio (5xx) by route", (12, y + 1, 12, 8),
              [target(f"{errors}\n/\n{total}", f"{{{{{n.route}}}}}")], unit="percentunit",
              description="Share of requests answered with a 5xx status."),
        panel("timeseries", "Requests by status", (0, y + 9, 12, 8),
              [target(f"sum by ({n.status}) (rate({n.requests}{{{sel}}}[{RATE}]))",
                      f"{{{{{n.status}}}}}")], unit="reqps"),
        panel("timeseries", "Requests in progress", (12, y + 9, 12, 8),
              [target(f"sum by ({n.in_progress_by}) ({n.in_progress}{{{in_progress_sel}}})",
                      f"{{{{{n.in_progress_by}}}}}")]),
    ]  # fmt: skip


def latency_panels(n: Naming, y: int) -> list[dict[str, Any]]:
    sel = f'{SERVICE}, {INSTANCE}, {n.route}=~"$route"'
    buckets = f"rate({n.duration}_bucket{{{sel}}}[{RATE}])"
    quantiles = [
        target(f"histogram_quantile({q}, sum by ({n.route}, le) ({buckets}))",
               f"p{int(q * 100)} {{{{{n.route}}}}}", ref, exemplar=ref == "C")
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]  # fmt: skip
    heatmap_options = {
        "calculate": False,
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "tooltip": {"mode": "single", "yHistogram": True},
        "yAxis": {"axisPlacement": "left", "unit": "s"},
    }
    return [
        row("Latency", y),
        panel("timeseries", "Duration p50 / p95 / p99 by route", (0, y + 1, 24, 9), quantiles,
              unit="s", description="From the duration histogram; p99 shows trace exemplars."),
        panel("heatmap", "Latency heatmap (exemplars link to traces)", (0, y + 10, 24, 9),
              [target(f"sum by (le) ({buckets})", "{{le}}", format="heatmap", exemplar=True)],
              unit="s", options=heatmap_options,
              description="Each exemplar carries the trace_id of a sampled request; the "
              "Prometheus data source's exemplar link (grafana/provisioning/datasources.yml) "
              "opens that trace in Tempo or Jaeger. Exemplars need OpenMetrics scrapes and "
              "--enable-feature=exemplar-storage; in multi-worker mode prometheus-client keeps "
              "none."),
    ]  # fmt: skip


def health_panels(y: int) -> list[dict[str, Any]]:
    sel = f"{SERVICE}, {INSTANCE}"
    status_mappings = [{"type": "value", "options": {
        "1": {"text": "healthy", "color": "green", "index": 0},
        "0": {"text": "unhealthy or pending", "color": "red", "index": 1}}}]  # fmt: skip
    return [
        row("Health checks", y),
        panel("state-timeline", "Health check status", (0, y + 1, 12, 8),
              [target(f"min by ({sc.LABEL_CHECK}) ({sc.HEALTH_CHECK_STATUS}{{{sel}}})",
                      f"{{{{{sc.LABEL_CHECK}}}}}")],
              description="1 healthy, 0 unhealthy or pending (the worst worker of each check).",
              fieldConfig={"defaults": {"unit": "short", "mappings": status_mappings,
                                        "min": 0, "max": 1}, "overrides": []}),
        panel("timeseries", "Health check duration p95", (12, y + 1, 12, 8),
              [target(f"histogram_quantile(0.95, sum by ({sc.LABEL_CHECK}, le) "
                      f"(rate({sc.HEALTH_CHECK_DURATION}_bucket{{{sel}}}[{RATE}])))",
                      f"{{{{{sc.LABEL_CHECK}}}}}")], unit="s"),
    ]  # fmt: skip


def drop_panels(y: int) -> list[dict[str, Any]]:
    sel = f"{SERVICE}, {INSTANCE}"
    drops = ((sc.SPANS_DROPPED, "Spans dropped", "exporter"),
             (sc.LOG_EVENTS_DROPPED, "Log events dropped", "sink"),
             (sc.METRICS_DROPPED, "Metric samples dropped", "exporter"))  # fmt: skip
    return [
        row("Telemetry pipeline drops", y),
        *(
            panel("timeseries", title, (8 * i, y + 1, 8, 8),
                  [target(f"sum by ({by}, reason) (rate({name}{{{sel}}}[{RATE}]))",
                          f"{{{{{by}}}}} {{{{reason}}}}")], unit="cps",
                  description=f"{name} by {by} and reason: an exporter or sink that is down, "
                  "a full queue, or shutdown.")
            for i, (name, title, by) in enumerate(drops)
        ),
    ]  # fmt: skip


def process_panels(y: int) -> list[dict[str, Any]]:
    # One process: prometheus-client's process collector (no service label, cpu as a counter).
    # Several workers: telemetry-web's per-worker gauges with a pid label (cpu as a gauge).
    cpu = (f"sum by (instance, pid) (rate(process_cpu_seconds_total{{{INSTANCE}}}[{RATE}]))\nor\n"
           f"sum by (instance, pid) (rate(process_cpu_seconds{{{INSTANCE}}}[{RATE}]))")  # fmt: skip
    who = "{{instance}} {{pid}}"
    return [
        row("Process (per worker in multi-worker mode)", y),
        panel("timeseries", "CPU", (0, y + 1, 12, 8), [target(cpu, who)], unit="percentunit",
              description="CPU seconds per second (1 = one core busy)."),
        panel("timeseries", "Resident memory", (12, y + 1, 12, 8),
              [target(f"process_resident_memory_bytes{{{INSTANCE}}}", who)], unit="bytes"),
        panel("timeseries", "Worker processes", (0, y + 9, 8, 8),
              [target(f"count by (instance) (process_start_time_seconds{{{INSTANCE}}})",
                      "{{instance}}")],
              description="Live worker processes per instance (1 without workers)."),
        panel("timeseries", "Open file descriptors", (8, y + 9, 8, 8),
              [target(f"process_open_fds{{{INSTANCE}}}", who)]),
        panel("timeseries", "GC collections", (16, y + 9, 8, 8),
              [target(f"sum by (instance, generation) "
                      f"(rate(python_gc_collections_total{{{INSTANCE}}}[{RATE}]))",
                      "{{instance}} gen {{generation}}")], unit="cps"),
    ]  # fmt: skip


def variable(name: str, label: str, query: str, *, multi: bool) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": f"{name}-variable"},
        "definition": query,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
    }


def dashboard(n: Naming) -> dict[str, Any]:
    panels = [*red_panels(n, 0), *latency_panels(n, 17), *health_panels(37),
              *drop_panels(46), *process_panels(55)]  # fmt: skip
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    count = n.requests
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource",
                      "pluginId": "prometheus", "pluginName": "Prometheus",
                      "description": "The Prometheus that scrapes the service's /metrics"}],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "11.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": k, "name": k, "version": ""}
              for k in ("timeseries", "heatmap", "state-timeline")),
        ],
        "uid": f"telemetry-web-{n.key}",
        "title": n.title,
        "description": f"RED per route, latency with trace exemplars, health checks, telemetry "
                       f"drops and process metrics of a telemetry-web service "
                       f"(metrics.naming: {n.key}).",
        "tags": ["telemetry-web", f"naming:{n.key}"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "timezone": "browser",
        "links": [],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [
            variable("service", "Service", f"label_values({count}, {sc.LABEL_SERVICE})",
                     multi=False),
            variable("environment", "Environment",
                     f'label_values({count}{{{sc.LABEL_SERVICE}=~"$service"}}, '
                     f"{sc.LABEL_ENVIRONMENT})", multi=True),
            variable("instance", "Instance", f"label_values({count}{{{SERVICE}}}, instance)",
                     multi=True),
            variable("route", "Route", f"label_values({count}{{{SERVICE}}}, {n.route})",
                     multi=True),
        ]},
        "panels": panels,
    }  # fmt: skip


def render(n: Naming) -> str:
    return json.dumps(dashboard(n), indent=2, ensure_ascii=False) + "\n"


def outputs() -> dict[Path, str]:
    """Every dashboard file and its content."""
    names = {"default": "telemetry-web.json", "otel": "telemetry-web-otel.json"}
    return {HERE / names[n.key]: render(n) for n in NAMINGS}


def main() -> int:
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
