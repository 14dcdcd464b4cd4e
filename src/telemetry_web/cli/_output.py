"""How the CLI talks: tables (coloured on a terminal, plain in a pipe), ``--json`` documents for
scripts, and one-line errors with a non-zero exit (never a traceback)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click

from ..store import StoreError

__all__ = [
    "CliError",
    "TelemetryGroup",
    "emit_json",
    "format_duration",
    "format_time",
    "json_option",
    "store_option",
    "table",
]

_F = TypeVar("_F", bound=Callable[..., Any])

DEFAULT_STORE = "./.telemetry/telemetry.db"


class CliError(click.ClickException):
    """An error shown as one line: ``telemetry: error: <message>``, exit 1."""

    def show(self, file: Any = None) -> None:
        _error_line(self.format_message(), file)


def _error_line(message: str, file: Any = None) -> None:
    text = " ".join(message.split())  # one line, whatever the message held
    click.secho(f"telemetry: error: {text}", fg="red", err=True, file=file)


class TelemetryGroup(click.Group):
    """A click group whose errors (bad arguments included) are one line and an exit status."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            _error_line(exc.format_message() + hint)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except StoreError as exc:
            _error_line(str(exc))
            sys.exit(1)
        except click.Abort:
            _error_line("aborted")
            sys.exit(1)
        except BrokenPipeError:  # `telemetry logs tail | head`
            sys.exit(0)
        except Exception as exc:
            if os.environ.get("TELEMETRY_DEBUG"):
                raise
            _error_line(f"unexpected {type(exc).__name__}: {exc} (TELEMETRY_DEBUG=1 shows more)")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def json_option(fn: _F) -> _F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document for scripts."
    )(fn)


def default_store_path() -> str:
    """``$TELEMETRY_STORE__PATH``, else ``store.path`` of ``$TELEMETRY_CONFIG``, else default."""
    env = os.environ.get("TELEMETRY_STORE__PATH")
    if env:
        return env
    if os.environ.get("TELEMETRY_CONFIG"):
        try:
            from ..config import load_settings

            return load_settings(None).store.path
        except Exception:  # a broken config file: `telemetry config check` says why
            pass
    return DEFAULT_STORE


def store_option(fn: _F) -> _F:
    return click.option(
        "--store",
        "store_path",
        metavar="PATH",
        default=None,
        help=f"The store file (default: $TELEMETRY_STORE__PATH or {DEFAULT_STORE}).",
    )(fn)


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, default=str, ensure_ascii=False))


def format_duration(seconds: float) -> str:
    ms = seconds * 1000
    if ms < 1:
        return f"{ms:.3f}ms"
    if ms < 1000:
        return f"{ms:.1f}ms"
    return f"{seconds:.2f}s"


def format_time(epoch: float, *, date: bool = True) -> str:
    moment = datetime.fromtimestamp(epoch)
    text = moment.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    return f"{text}.{int(moment.microsecond / 1000):03d}"


Cell = str | tuple[str, dict[str, Any]]  # text, or (text, click.style arguments)


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]]) -> None:
    """Aligned columns with a bold header; styles are dropped when stdout is not a terminal."""
    texts: list[list[str]] = [[c if isinstance(c, str) else c[0] for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for text_row in texts:
        for i, text in enumerate(text_row):
            widths[i] = max(widths[i], len(text))
    click.echo(
        click.style(
            "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), bold=True
        )
    )
    for row in rows:
        cells = []
        for cell, width in zip(row, widths, strict=True):
            style: dict[str, Any]
            text, style = (cell, {}) if isinstance(cell, str) else cell
            cells.append(click.style(text.ljust(width), **style) if style else text.ljust(width))
        click.echo("  ".join(cells).rstrip())
