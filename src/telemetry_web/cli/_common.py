"""Option parsing shared by the commands: durations, ``key=value``, opening the store."""

from __future__ import annotations

from typing import Any

import click

from ..config import parse_duration
from ..store import StoreError, TracingManager
from ._output import CliError, default_store_path

__all__ = ["DURATION", "open_store", "parse_attrs"]


class _Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.fail(f"{value!r} is not a duration such as 250ms, 15m, 1h or 7d", param, ctx)
        if seconds < 0:
            self.fail(f"{value!r} is negative", param, ctx)
        return seconds


DURATION = _Duration()


def parse_attrs(values: tuple[str, ...]) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="'--attr'")
        attrs[key] = value
    return attrs


def open_store(path: str | None, *, allow_empty: bool = False) -> TracingManager:
    """The store at ``path`` (or the default); a missing or empty one is a one-line error."""
    try:
        manager = TracingManager(path or default_store_path())
    except StoreError as exc:
        raise CliError(str(exc)) from None
    if not allow_empty and manager.is_empty():
        manager.close()
        raise CliError(
            f"the telemetry store at {manager.path} is empty: nothing has been recorded yet"
        )
    return manager
