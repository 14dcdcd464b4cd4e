"""``telemetry metrics list`` and ``query``: the metric history kept in the store, the metric
families of a running service (``--url``) or of a worker directory (``--dir``).

::

    telemetry metrics list                       # the history: latest value or rate per family
    telemetry metrics query http_request_duration_seconds --by route --since 1h [--step 5m]
"""

from __future__ import annotations

import math
import os
import time
import urllib.error
import urllib.request
from typing import Any

import click

from ..store import MetricHistory, QueryRow, StoreError
from ._common import DURATION, parse_attrs
from ._output import (
    CliError,
    default_store_path,
    emit_json,
    format_duration,
    format_time,
    json_option,
    store_option,
    table,
)

__all__ = ["metrics"]


@click.group()
def metrics() -> None:
    """Inspect the metrics of a running service."""


def _from_url(url: str, timeout: float) -> list[Any]:
    from prometheus_client.parser import text_string_to_metric_families

    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        raise CliError(f"{url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CliError(f"cannot fetch {url}: {reason}") from None
    try:
        return list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise CliError(f"{url} did not answer Prometheus text: {exc}") from None


def _from_dir(path: str) -> list[Any]:
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if not os.path.isdir(path):
        raise CliError(f"{path} is not a directory")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return list(registry.collect())


# Families whose series carry a `<name>_created` timestamp (prometheus-client exposes it as
# a gauge family of its own in the text format): not a metric anyone queries.
_WITH_CREATED = {"counter", "histogram", "summary", "gaugehistogram"}
# Labels that split one series into several samples (a histogram's buckets, a summary's
# quantiles) rather than naming another series.
_SAMPLE_LABELS = {"le", "quantile"}


def _query_name(family: Any) -> str:
    """The name a PromQL query uses: a counter's with its ``_total`` (prometheus-client's
    parser strips it from the family name), a histogram's or summary's base name."""
    if family.type == "counter":
        names = [s.name for s in family.samples if not s.name.endswith("_created")]
        return str(names[0]) if names else f"{family.name}_total"
    return str(family.name)


def _series(family: Any) -> int:
    """The label sets of the family: a histogram's buckets, sum and count of one label set are
    one series."""
    return len(
        {
            frozenset((k, v) for k, v in s.labels.items() if k not in _SAMPLE_LABELS)
            for s in family.samples
            if not s.name.endswith("_created")
        }
    )


def _rows(families: list[Any]) -> list[dict[str, Any]]:
    created = {f"{f.name}_created" for f in families if f.type in _WITH_CREATED}
    return [
        {"name": _query_name(f), "type": f.type, "help": f.documentation, "series": _series(f)}
        for f in families
        if not (f.type == "gauge" and f.name in created)
    ]


@metrics.command("list")
@click.option("--url", help="The service's metrics URL, e.g. http://127.0.0.1:8000/metrics.")
@click.option("--dir", "directory", help="A multiprocess directory (PROMETHEUS_MULTIPROC_DIR).")
@click.option("--timeout", type=float, default=5.0, show_default=True)
@click.option(
    "--since", type=DURATION, default="1m", show_default=True,
    help="History only: the window of the rates.",
)  # fmt: skip
@store_option
@json_option
def list_(
    url: str | None,
    directory: str | None,
    timeout: float,
    since: float,
    store_path: str | None,
    as_json: bool,
) -> None:
    """Name (as PromQL queries it), type, number of series (label sets) and help of each metric
    family; from the store's history (the default), with the latest value of each gauge and
    the rate per second of each counter (histograms: observations) over --since."""
    if url is not None and directory is not None:
        raise click.UsageError("give at most one of --url or --dir")
    if url is None and directory is None:
        _list_history(store_path, since, as_json)
        return
    if url is not None and "://" not in url:
        url = "http://" + url
    families = _from_url(url, timeout) if url is not None else _from_dir(directory or "")
    rows = sorted(_rows(families), key=lambda r: r["name"])
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("No metrics.")
        return
    table(
        ["NAME", "TYPE", "SERIES", "HELP"],
        [[r["name"], (r["type"], {"fg": "cyan"}), str(r["series"]), r["help"]] for r in rows],
    )


def _open_history(store_path: str | None) -> MetricHistory:
    try:
        return MetricHistory(store_path or default_store_path())
    except StoreError as exc:
        raise CliError(str(exc)) from None


def _list_history(store_path: str | None, window: float, as_json: bool) -> None:
    if window <= 0:
        raise click.BadParameter("must be positive", param_hint="'--since'")
    with _open_history(store_path) as history:
        families = history.families(window)
        latest = history.latest()
    if as_json:
        emit_json({"latest": latest, "window": window,
                   "families": [f.to_json() for f in families]})  # fmt: skip
        return
    click.echo(f"History up to {format_time(latest)}; rates over the last {_span(window)}.")
    table(
        ["NAME", "TYPE", "SERIES", "VALUE", "HELP"],
        [
            [f.name, (f.type, {"fg": "cyan"}), str(f.series),
             _value(f.value, f.value_kind, f.name), f.help]
            for f in families
        ],
    )  # fmt: skip


@metrics.command("query")
@click.argument("name")
@click.option(
    "--by", "by", multiple=True, metavar="LABEL[,LABEL]",
    help="Group by these labels (repeat or comma-separate).",
)  # fmt: skip
@click.option("--since", type=DURATION, default="1h", show_default=True)
@click.option("--step", type=DURATION, default=None, help="Interval length (default: ~since/30).")
@click.option("--where", "where", multiple=True, metavar="LABEL=VALUE", help="Keep these series.")
@store_option
@json_option
def query(
    name: str,
    by: tuple[str, ...],
    since: float,
    step: float | None,
    where: tuple[str, ...],
    store_path: str | None,
    as_json: bool,
) -> None:
    """Per interval and group: a histogram's request rate, error ratio (status >= 500) and
    p50/p95/p99; a counter's rate; a gauge's value."""
    if since <= 0:
        raise click.BadParameter("must be positive", param_hint="'--since'")
    if step is not None and step <= 0:
        raise click.BadParameter("must be positive", param_hint="'--step'")
    labels = [label.strip() for item in by for label in item.split(",") if label.strip()]
    filters = parse_attrs(where)
    with _open_history(store_path) as history:
        try:
            kind, used_step, rows = history.query(
                name, by=labels, since=since, step=step, where=filters, now=time.time()
            )
        except StoreError as exc:
            raise CliError(str(exc)) from None
    if as_json:
        emit_json({"metric": name, "type": kind, "since": since, "step": used_step,
                   "by": labels, "rows": [r.to_json() for r in rows]})  # fmt: skip
        return
    if not rows:
        click.echo(f"No samples of {name} in the last {_span(since)}.")
        return
    click.echo(f"{name} ({kind}), every {_span(used_step)} over the last {_span(since)}:")
    headers = ["END", *(label.upper() for label in labels)]
    if kind == "histogram":
        headers += ["RATE", "ERRORS", "P50", "P95", "P99"]
    else:
        headers.append("VALUE" if kind == "gauge" else "RATE")
    table(headers, [_query_cells(kind, name, labels, row) for row in rows])


def _query_cells(kind: str, name: str, labels: list[str], row: QueryRow) -> list[Any]:
    cells: list[Any] = [format_time(row.end, date=False), *(row.labels[k] for k in labels)]
    if kind == "gauge":
        return [*cells, _number(row.value)]
    cells.append(format_rate(row.rate))
    if kind == "histogram":
        ratio = row.error_ratio
        cells.append(
            "-" if ratio is None else (f"{ratio * 100:.1f}%", {"fg": "red"} if ratio else {})
        )
        for key in ("p50", "p95", "p99"):
            cells.append(_observed(row.quantiles.get(key), name))
    return cells


def _ratio(ratio: float | None) -> Any:
    if ratio is None:
        return "-"
    return (f"{ratio * 100:.1f}%", {"fg": "red"} if ratio else {})


def format_rate(rate: float | None) -> str:
    """``2.5/s``: four significant digits."""
    return "-" if rate is None else f"{rate:.4g}/s"


def _number(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else f"{value:.6g}"


def _observed(value: float | None, name: str) -> str:
    if value is None:
        return "-"
    return format_duration(value) if name.endswith("_seconds") else f"{value:.4g}"


def _value(value: float | None, kind: str, name: str) -> str:
    return format_rate(value) if kind == "rate" else _number(value)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
