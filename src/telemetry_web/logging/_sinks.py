"""Where events go. A sink gets batches of finished event dicts on the writer thread."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, Protocol, TextIO, runtime_checkable

from structlog.dev import ConsoleRenderer

__all__ = ["ConsoleSink", "LogSink", "render_json"]


@runtime_checkable
class LogSink(Protocol):
    """Receives finished events in batches, from the writer thread only."""

    def write(self, events: Sequence[dict[str, Any]]) -> None: ...


def render_json(event: dict[str, Any]) -> str:
    return json.dumps(event, default=str, ensure_ascii=False)


class ConsoleSink:
    """One JSON object per line, or key-value lines for people (coloured on a terminal)."""

    name = "console"

    def __init__(self, *, format: str = "json", pretty: bool | None = None, stream: str = "stdout"):
        self._stream_name = stream
        self._format = format
        self._pretty = pretty
        self._console: ConsoleRenderer | None = None

    @property
    def stream(self) -> TextIO:
        # Looked up per write so that pytest's capture and redirections take effect.
        return sys.stdout if self._stream_name == "stdout" else sys.stderr

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        stream = self.stream
        if self._format == "json":
            text = "".join(render_json(e) + "\n" for e in events)
        else:
            renderer = self._renderer(stream)
            text = "".join(
                str(renderer(None, str(e.get("level", "info")), dict(e))) + "\n" for e in events
            )
        stream.write(text)
        stream.flush()

    def _renderer(self, stream: TextIO) -> ConsoleRenderer:
        if self._console is None:
            colors = self._pretty if self._pretty is not None else _isatty(stream)
            self._console = ConsoleRenderer(colors=colors)
        return self._console


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
