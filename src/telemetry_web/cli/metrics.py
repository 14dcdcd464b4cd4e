"""``telemetry metrics list``: the metric families of a running service or a worker directory."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import Any

import click

from ._output import CliError, emit_json, json_option, table

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
@json_option
def list_(url: str | None, directory: str | None, timeout: float, as_json: bool) -> None:
    """Name (as PromQL queries it), type, help and number of series (label sets) of each
    metric family."""
    if (url is None) == (directory is None):
        raise click.UsageError("give one of --url or --dir")
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
