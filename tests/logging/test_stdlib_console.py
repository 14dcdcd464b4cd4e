"""Standard ``logging`` lines print once when the pipeline prints to the console (issue 11).

A record reaching the bridge on the root logger is rendered by the pipeline; a plain console
handler on its way up (werkzeug's own, a ``basicConfig`` root handler) must not print it too.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from telemetry_web import Telemetry

SERVICE = "console-test"


@pytest.fixture
def loggers() -> Iterator[list[logging.Logger]]:
    """Loggers a test configures by hand; their handlers and flags are reset afterwards."""
    used: list[logging.Logger] = []
    root = logging.getLogger()
    root_handlers = list(root.handlers)
    yield used
    for logger in used:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    for handler in list(root.handlers):
        if handler not in root_handlers:
            root.removeHandler(handler)


@pytest.fixture
def console_telemetry() -> Iterator[list[Telemetry]]:
    """Telemetries printing JSON to stdout and bridging standard logging; shut down after."""
    made: list[Telemetry] = []
    yield made
    for telemetry in made:
        telemetry.shutdown()


def _telemetry(made: list[Telemetry], *, console: bool = True) -> Telemetry:
    sinks = {"console": {"pretty": False}} if console else {"console": False}
    telemetry = Telemetry(
        {"logging": {"sinks": sinks, "format": "json"}, "store": {"enabled": "false"}},
        service=SERVICE, use_env=False, set_global=False,
    )  # fmt: skip
    made.append(telemetry)
    return telemetry


def _plain_handler(logger: logging.Logger, stream: TextIO | None = None) -> logging.Handler:
    """A plain handler on stdout, where the console sink prints too (so the order printed is
    the order read); stderr counts as the console as well."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(logging.Formatter("PLAIN %(name)s: %(message)s"))
    logger.addHandler(handler)
    return handler


def _printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    lines = captured.out.splitlines() + captured.err.splitlines()
    return [
        line if not line.startswith("{") else _short(json.loads(line))
        for line in lines
        if line.strip()
    ]


def _short(event: dict[str, object]) -> str:
    return f"JSON {event['logger']} {event['level']}: {event['event']}"


def test_library_logger_with_its_own_console_handler_prints_once(
    capsys: pytest.CaptureFixture[str],
    loggers: list[logging.Logger],
    console_telemetry: list[Telemetry],
) -> None:
    """werkzeug's case: a propagating logger with its own stderr handler, added before the
    Telemetry, prints each line once, as JSON; its level still filters."""
    werkzeug = logging.getLogger("tests.console.werkzeug")
    loggers.append(werkzeug)
    werkzeug.setLevel(logging.INFO)
    _plain_handler(werkzeug)
    werkzeug.info("before telemetry")
    telemetry = _telemetry(console_telemetry)
    werkzeug.info('127.0.0.1 - - "GET /users/3 HTTP/1.1" 200 -')
    werkzeug.debug("below the library's level")
    telemetry.flush()
    assert _printed(capsys) == [
        "PLAIN tests.console.werkzeug: before telemetry",
        'JSON tests.console.werkzeug info: 127.0.0.1 - - "GET /users/3 HTTP/1.1" 200 -',
    ]


def test_basic_config_root_handler_prints_nothing_twice(
    capsys: pytest.CaptureFixture[str],
    loggers: list[logging.Logger],
    console_telemetry: list[Telemetry],
) -> None:
    """A root console handler (``logging.basicConfig``) next to the bridge: each application
    line is printed once, by the pipeline."""
    app = logging.getLogger("tests.console.app")
    loggers.append(app)
    _plain_handler(logging.getLogger(), sys.stderr)  # basicConfig's stream
    telemetry = _telemetry(console_telemetry)
    app.warning("Loading order %s", 7)
    telemetry.flush()
    assert _printed(capsys) == ["JSON tests.console.app warning: Loading order 7"]


def test_non_propagating_logger_keeps_its_own_handler(
    capsys: pytest.CaptureFixture[str],
    loggers: list[logging.Logger],
    console_telemetry: list[Telemetry],
) -> None:
    """uvicorn's case: a logger with ``propagate = False`` and its own handler never reaches
    the bridge, and still prints its lines once, through its handler."""
    uvicorn = logging.getLogger("tests.console.uvicorn")
    error = logging.getLogger("tests.console.uvicorn.error")
    loggers.extend([uvicorn, error])
    uvicorn.propagate = False
    uvicorn.setLevel(logging.INFO)
    _plain_handler(uvicorn)
    telemetry = _telemetry(console_telemetry)
    error.info("Application startup complete.")
    telemetry.flush()
    assert _printed(capsys) == ["PLAIN tests.console.uvicorn.error: Application startup complete."]


def test_handler_added_after_the_bridge_is_quiet_from_its_second_line(
    capsys: pytest.CaptureFixture[str],
    loggers: list[logging.Logger],
    console_telemetry: list[Telemetry],
) -> None:
    """A console handler added once the bridge exists is found on its first record; later
    records print once."""
    late = logging.getLogger("tests.console.late")
    loggers.append(late)
    telemetry = _telemetry(console_telemetry)
    _plain_handler(late)
    late.warning("first")
    late.warning("second")
    telemetry.flush()
    assert _printed(capsys) == [
        "PLAIN tests.console.late: first",
        "JSON tests.console.late warning: first",
        "JSON tests.console.late warning: second",
    ]


def test_removing_the_bridge_gives_the_lines_back_to_their_handler(
    capsys: pytest.CaptureFixture[str],
    loggers: list[logging.Logger],
    console_telemetry: list[Telemetry],
) -> None:
    """After ``shutdown()`` (the bridge removed) the library's handler prints again."""
    lib = logging.getLogger("tests.console.lib")
    loggers.append(lib)
    _plain_handler(lib)
    telemetry = _telemetry(console_telemetry)
    lib.warning("while bridged")
    telemetry.shutdown()
    lib.warning("after shutdown")
    assert _printed(capsys) == [
        "JSON tests.console.lib warning: while bridged",
        "PLAIN tests.console.lib: after shutdown",
    ]


def test_file_handlers_and_a_pipeline_without_console_are_left_alone(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    loggers: list[logging.Logger],
    console_telemetry: list[Telemetry],
) -> None:
    """A file handler is not a duplicate on screen, and with the console sink off the
    library's console handler is the only one printing."""
    lib = logging.getLogger("tests.console.files")
    loggers.append(lib)
    log_file = tmp_path / "app.log"
    file_handler = logging.FileHandler(log_file)
    lib.addHandler(file_handler)
    _plain_handler(lib)
    telemetry = _telemetry(console_telemetry, console=False)
    lib.warning("kept")
    telemetry.flush()
    file_handler.close()
    assert log_file.read_text() == "kept\n"
    assert _printed(capsys) == ["PLAIN tests.console.files: kept"]


def test_other_streams_are_not_the_console(
    capsys: pytest.CaptureFixture[str],
    loggers: list[logging.Logger],
    console_telemetry: list[Telemetry],
) -> None:
    """A stream handler writing to something else than stdout or stderr keeps writing."""
    lib = logging.getLogger("tests.console.buffer")
    loggers.append(lib)
    buffer = io.StringIO()
    _plain_handler(lib, buffer)
    telemetry = _telemetry(console_telemetry)
    lib.warning("both")
    telemetry.flush()
    assert buffer.getvalue() == "PLAIN tests.console.buffer: both\n"
    assert _printed(capsys) == ["JSON tests.console.buffer warning: both"]


def test_terminal_colours_are_stripped_from_bridged_messages(
    capsys: pytest.CaptureFixture[str],
    loggers: list[logging.Logger],
    console_telemetry: list[Telemetry],
) -> None:
    """werkzeug colours a 404's access line even into a pipe; the JSON line carries the text."""
    lib = logging.getLogger("tests.console.colours")
    loggers.append(lib)
    telemetry = _telemetry(console_telemetry)
    lib.warning('"\x1b[33mGET /nope HTTP/1.1\x1b[0m" 404 -')
    telemetry.flush()
    assert _printed(capsys) == ['JSON tests.console.colours warning: "GET /nope HTTP/1.1" 404 -']
