"""The console sink: JSON lines for machines, coloured key-value lines for a terminal."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable

import pytest

from telemetry_web.logging import ConsoleSink

from .conftest import MakeTelemetry

EVENT = {
    "timestamp": "2026-01-29T10:15:30.123Z",
    "level": "info",
    "event": "Processing request",
    "logger": "api",
    "service": "orders",
    "user_id": 42,
}


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as a real one does."""

    def isatty(self) -> bool:
        return True


# pytest re-installs its own capture streams between a test's phases: the test body itself
# points sys.stdout at the stream the sink should write to.


@pytest.fixture
def stdout(monkeypatch: pytest.MonkeyPatch) -> Callable[[], io.StringIO]:
    """``stdout()``: point sys.stdout at a pipe-like stream (not a terminal) and return it."""

    def install() -> io.StringIO:
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stdout", stream)
        return stream

    return install


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Callable[[], Terminal]:
    """``terminal()``: point sys.stdout at a stream that is a terminal and return it."""

    def install() -> Terminal:
        stream = Terminal()
        monkeypatch.setattr(sys, "stdout", stream)
        return stream

    return install


def test_json_lines_when_not_a_terminal(stdout: Callable[[], io.StringIO]) -> None:
    """Unset ``pretty`` on a pipe: one JSON object per line, every field kept."""
    stream = stdout()
    ConsoleSink().write([EVENT, {**EVENT, "user_id": 43}])
    lines = stream.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [EVENT, {**EVENT, "user_id": 43}]


def test_pretty_key_values_on_a_terminal(terminal: Callable[[], Terminal]) -> None:
    """Unset ``pretty`` on a terminal: structlog's coloured key-value line, not JSON."""
    stream = terminal()
    ConsoleSink().write([EVENT])
    line = stream.getvalue()
    assert "\x1b[" in line  # ANSI colours
    assert "Processing request" in line
    assert "user_id" in line
    assert "42" in line
    assert not line.lstrip().startswith("{")


def test_pretty_true_forces_colours(stdout: Callable[[], io.StringIO]) -> None:
    """``pretty: true`` colours key-value lines even when the stream is not a terminal."""
    stream = stdout()
    ConsoleSink(pretty=True).write([EVENT])
    assert "\x1b[" in stream.getvalue()


def test_pretty_false_forces_json(terminal: Callable[[], Terminal]) -> None:
    """``pretty: false`` writes JSON lines even to a terminal."""
    stream = terminal()
    ConsoleSink(pretty=False).write([EVENT])
    assert json.loads(stream.getvalue()) == EVENT


def test_console_format_without_colours(stdout: Callable[[], io.StringIO]) -> None:
    """``format: console`` on a pipe: plain key-value lines without escape codes."""
    stream = stdout()
    ConsoleSink(format="console").write([EVENT])
    text = stream.getvalue()
    assert "\x1b[" not in text
    assert "Processing request" in text
    assert "user_id=42" in text


def test_pretty_line_shows_the_exception_stack(terminal: Callable[[], Terminal]) -> None:
    """An event's exception fields are printed as its stack under the line."""
    event = {
        **EVENT,
        "level": "error",
        "exception": {
            "type": "ValueError",
            "message": "bad",
            "stack": "Traceback...\nValueError: bad\n",
        },
    }
    stream = terminal()
    ConsoleSink().write([event])
    assert "ValueError: bad" in stream.getvalue()


def test_stderr_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """``stream: stderr`` writes to standard error."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    ConsoleSink(stream="stderr").write([EVENT])
    assert json.loads(stream.getvalue())["event"] == "Processing request"


def test_configured_console_sink_through_the_pipeline(
    make_telemetry: MakeTelemetry, stdout: Callable[[], io.StringIO]
) -> None:
    """The configured console sink prints every line of the pipeline as JSON on a pipe."""
    stream = stdout()
    tel = make_telemetry(logging={"sinks": {"console": {"pretty": None}}})
    tel.get_logger("api").info("Processing request", user_id=42, password="pw")
    tel.flush()
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["event"], line["user_id"], line["password"]) == (
        "Processing request",
        42,
        "REDACTED",
    )
