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


@metrics.command("list")
@click.option("--url", help="The service's metrics URL, e.g. http://127.0.0.1:8000/metrics.")
@click.option("--dir", "directory", help="A multiprocess directory (PROMETHEUS_MULTIPROC_DIR).")
@click.option("--timeout", type=float, default=5.0, show_default=True)
@json_option
def list_(url: str | None, directory: str | None, timeout: float, as_json: bool) -> None:
    """Name, type, help and series count of each metric family."""
    if (url is None) == (directory is None):
        raise click.UsageError("give one of --url or --dir")
    if url is not None and "://" not in url:
        url = "http://" + url
    families = _from_url(url, timeout) if url is not None else _from_dir(directory or "")
    rows = sorted(
        (
            {"name": f.name, "type": f.type, "help": f.documentation, "series": len(f.samples)}
            for f in families
        ),
        key=lambda r: r["name"],
    )
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
