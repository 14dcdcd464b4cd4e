"""``telemetry traces search | show | stats``: the spans in the store."""

from __future__ import annotations

import click

from ..store import LogQuery, LogRecord, SpanRecord, TraceQuery, TracingManager
from ._common import DURATION, open_store, parse_attrs
from ._output import (
    CliError,
    emit_json,
    format_duration,
    format_time,
    json_option,
    store_option,
    table,
)

__all__ = ["traces"]

BAR_WIDTH = 40


@click.group()
def traces() -> None:
    """Search, show and summarise the traces in the store."""


@traces.command()
@click.option("--service", help="Only spans of this service.")
@click.option("--route", help="Only spans of this route template, e.g. /api/users/{user_id}.")
@click.option("--status", type=click.Choice(["error", "ok"]), help="Only failed (or not) spans.")
@click.option("--min-duration", type=DURATION, help="Only spans at least this long, e.g. 250ms.")
@click.option("--since", type=DURATION, help="Only spans started this long ago, e.g. 15m.")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=VALUE", help="Span attribute match.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@store_option
@json_option
def search(
    service: str | None,
    route: str | None,
    status: str | None,
    min_duration: float | None,
    since: float | None,
    attrs: tuple[str, ...],
    limit: int,
    store_path: str | None,
    as_json: bool,
) -> None:
    """The newest traces with a span matching every condition."""
    query = TraceQuery(
        service=service, route=route, status=status, min_duration=min_duration, since=since,
        attributes=parse_attrs(attrs), limit=limit,
    )  # fmt: skip
    with open_store(store_path) as store:
        found = store.list_traces(query)
    if as_json:
        emit_json([t.to_json() for t in found])
        return
    if not found:
        click.echo("No traces match.")
        return
    table(
        ["TRACE ID", "STARTED", "SERVICE", "NAME", "STATUS", "DURATION", "SPANS"],
        [
            [
                t.trace_id,
                format_time(t.start),
                t.service,
                t.name,
                _status_cell(t.status, t.http_status),
                format_duration(t.duration),
                str(t.span_count),
            ]
            for t in found
        ],
    )


def _status_cell(status: str, http_status: int | None) -> tuple[str, dict[str, object]]:
    text = "ERROR" if status == "error" else status.upper()
    if http_status is not None:
        text = f"{text} {http_status}"
    return text, ({"fg": "red", "bold": True} if status == "error" else {"fg": "green"})


def _exception_text(span: SpanRecord) -> str | None:
    for event in span.events:
        if event.get("name") == "exception":
            attrs = event.get("attributes", {})
            return (
                f"{attrs.get('exception.type', 'exception')}: {attrs.get('exception.message', '')}"
            )
    return span.status_message


def _ordered(spans: list[SpanRecord]) -> list[tuple[int, SpanRecord]]:
    """Depth-first, children by start time: the rows of the waterfall."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    rows: list[tuple[int, SpanRecord]] = []

    def walk(parent: str | None, depth: int) -> None:
        for child in sorted(children.get(parent, []), key=lambda s: s.start):
            rows.append((depth, child))
            walk(child.span_id, depth + 1)

    walk(None, 0)
    return rows


@traces.command()
@click.argument("trace_id")
@store_option
@json_option
def show(trace_id: str, store_path: str | None, as_json: bool) -> None:
    """TRACE_ID's spans as a waterfall, with the trace's log lines under their spans."""
    with open_store(store_path) as store:
        spans = store.get_trace(trace_id)
        if not spans:
            raise CliError(f"no trace {trace_id} in the store at {store.path}")
        logs = store.logs(LogQuery(trace_id=spans[0].trace_id, limit=10000))
    if as_json:
        emit_json({"trace_id": spans[0].trace_id, "spans": [s.to_json() for s in spans],
                   "logs": [entry.to_json() for entry in logs]})  # fmt: skip
        return
    begin = min(s.start for s in spans)
    total = max(s.start + s.duration for s in spans) - begin or 1e-9
    errors = sum(s.is_error for s in spans)
    head = f"Trace {spans[0].trace_id}  {format_time(begin)}  {format_duration(total)}  "
    head += f"{len(spans)} spans"
    click.echo(
        click.style(head, bold=True)
        + (click.style(f"  {errors} failed", fg="red") if errors else "")
    )
    by_span: dict[str | None, list[LogRecord]] = {}
    for entry in logs:
        key = entry.span_id if any(s.span_id == entry.span_id for s in spans) else None
        by_span.setdefault(key, []).append(entry)
    click.echo(click.style(f"{'OFFSET':>10}  {'DURATION':>10}  {'':{BAR_WIDTH}}  SPAN", bold=True))
    for depth, span in _ordered(spans):
        offset = span.start - begin
        left = min(BAR_WIDTH - 1, int(offset / total * BAR_WIDTH))
        width = max(1, min(BAR_WIDTH - left, round(span.duration / total * BAR_WIDTH)))
        bar = " " * left + "█" * width + " " * (BAR_WIDTH - left - width)
        colour = "red" if span.is_error else "cyan"
        label = f"{'  ' * depth}{span.name} [{span.kind}] {span.service}"
        if span.http_status is not None:
            label += f" {span.http_status}"
        line = f"{format_duration(offset):>10}  {format_duration(span.duration):>10}  "
        line += click.style(bar, fg=colour) + "  " + label
        if span.is_error:
            line += click.style(" ✗ ERROR", fg="red", bold=True)
        click.echo(line)
        indent = " " * (24 + BAR_WIDTH + 2 * depth)
        if span.is_error:
            text = _exception_text(span)
            if text:
                click.echo(indent + click.style(f"  ! {text}", fg="red"))
        for entry in by_span.pop(span.span_id, []):
            click.echo(indent + "  " + _log_text(entry))
    for entry in by_span.get(None, []):
        click.echo(" " * 24 + _log_text(entry))


def _log_text(entry: LogRecord) -> str:
    colour = {"warning": "yellow", "error": "red", "critical": "red"}.get(entry.level)
    level = click.style(f"{entry.level:<7}", fg=colour) if colour else f"{entry.level:<7}"
    skip = {"timestamp", "level", "event", "logger", "service", "environment", "trace_id",
            "span_id", "request_id"}  # fmt: skip
    extra = " ".join(f"{k}={v}" for k, v in entry.fields.items() if k not in skip)
    return f"{format_time(entry.timestamp, date=False)} {level} {entry.event}  {extra}".rstrip()


@traces.command()
@click.option("--service", help="Only this service.")
@click.option("--since", type=DURATION, default="1h", show_default=True, help="Time window.")
@store_option
@json_option
def stats(service: str | None, since: float, store_path: str | None, as_json: bool) -> None:
    """Per route: requests, error rate and p50/p95/p99 latency of the server spans."""
    with open_store(store_path) as store:
        found = store.route_stats(service=service, since=since)
    if as_json:
        emit_json([r.to_json() for r in found])
        return
    if not found:
        click.echo("No server spans in that window.")
        return
    table(
        ["SERVICE", "ROUTE", "COUNT", "ERRORS", "ERROR RATE", "P50", "P95", "P99"],
        [
            [
                r.service,
                r.route,
                str(r.count),
                str(r.errors),
                (f"{r.error_rate:.1%}", {"fg": "red"} if r.errors else {}),
                format_duration(r.p50),
                format_duration(r.p95),
                format_duration(r.p99),
            ]
            for r in found
        ],
    )


# re-exported for tests that read the store the way the commands do
_ = TracingManager
