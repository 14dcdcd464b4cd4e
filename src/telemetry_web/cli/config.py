"""``telemetry config check FILE``: the engine's own validation, without starting anything."""

from __future__ import annotations

import click

from ..config import load_settings, not_built_yet
from ..errors import ConfigError
from ._output import emit_json, json_option

__all__ = ["config"]


@click.group()
def config() -> None:
    """Work with configuration files."""


@config.command()
@click.argument("file", type=click.Path(dir_okay=False))
@json_option
def check(file: str, as_json: bool) -> None:
    """Validate FILE as the engine would; print 'ok', or each problem with its key path."""
    try:
        settings = load_settings(file, use_env=False)
        problems = not_built_yet(settings)
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        if as_json:
            emit_json({"ok": False, "file": file, "problems": exc.problems})
        else:
            click.secho(str(exc), fg="red", err=True)
        raise SystemExit(1) from None
    if as_json:
        emit_json({"ok": True, "file": file, "problems": []})
    else:
        click.secho("ok", fg="green")
