"""``telemetry logs tail``: the log lines in the store, optionally followed."""

from __future__ import annotations

import dataclasses
import time

import click

from ..store import LogQuery, LogRecord
from ._common import DURATION, open_store
from ._output import format_time, json_option, store_option

__all__ = ["logs"]

_COLOURS = {"debug": "bright_black", "warning": "yellow", "error": "red", "critical": "red"}
_FOLLOW_BATCH = 5000  # lines read per query while following
_STANDARD = {"timestamp", "level", "event", "logger", "service", "environment"}


@click.group()
def logs() -> None:
    """Read the log lines in the store."""


def _print(entry: LogRecord, as_json: bool) -> None:
    if as_json:  # one JSON object per line, so that --follow streams
        click.echo(__import__("json").dumps(entry.to_json(), default=str, ensure_ascii=False))
        return
    colour = _COLOURS.get(entry.level)
    level = f"{entry.level:<8}"
    extra = " ".join(f"{k}={v}" for k, v in entry.fields.items() if k not in _STANDARD)
    click.echo(
        f"{format_time(entry.timestamp)} "
        + (click.style(level, fg=colour) if colour else level)
        + f" {entry.service or '-'} {entry.logger or '-'}: "
        + click.style(str(entry.event), bold=True)
        + (f"  {extra}" if extra else "")
    )


@logs.command()
@click.option("--service", help="Only this service.")
@click.option(
    "--level",
    type=click.Choice(["debug", "info", "warning", "error", "critical"], case_sensitive=False),
    help="This level and above.",
)
@click.option("--trace-id", help="Only the lines of this trace.")
@click.option("--since", type=DURATION, help="Only lines this recent, e.g. 15m.")
@click.option("-n", "--lines", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines as they arrive.")
@click.option("--interval", type=DURATION, default="0.5s", hidden=True)
@click.option("--follow-for", type=DURATION, default=None, hidden=True)  # a bound for tests
@store_option
@json_option
def tail(
    service: str | None,
    level: str | None,
    trace_id: str | None,
    since: float | None,
    lines: int,
    follow: bool,
    interval: float,
    follow_for: float | None,
    store_path: str | None,
    as_json: bool,
) -> None:
    """The last log lines by time (JSON: one object per line), then new ones with --follow."""
    level = level.lower() if level else None
    query = LogQuery(service=service, level=level, trace_id=trace_id, since=since, limit=lines)
    with open_store(store_path, allow_empty=follow) as store:
        last = store.last_log_id()
        found = store.logs(dataclasses.replace(query, until_id=last))
        for entry in found:
            _print(entry, as_json)
        if not follow:
            if not found and not as_json:
                click.echo("No log lines match.", err=True)
            return
        deadline = None if follow_for is None else time.monotonic() + follow_for
        new = dataclasses.replace(query, since=None, limit=_FOLLOW_BATCH)
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(interval)
                while True:
                    batch = store.logs_written_after(dataclasses.replace(new, after_id=last))
                    if not batch:
                        break
                    last = batch[-1].id
                    # Each poll prints its lines by time; a line another process wrote late
                    # still comes after those already printed (it is never skipped or repeated).
                    for entry in sorted(batch, key=lambda e: (e.timestamp, e.id)):
                        _print(entry, as_json)
        except KeyboardInterrupt:
            return
