"""The sink protocol users implement: write(events), optionally flush() and close()."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from telemetry_web import Telemetry


class PlainSink:
    """A user's sink whose flush takes no timeout and returns None, like a file's."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.flushes = 0

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        self.events.extend(events)

    def flush(self) -> None:
        self.flushes += 1


def test_a_sink_whose_flush_takes_no_timeout_is_flushed_quietly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """flush() without arguments is called, its None counts as delivered, nothing is reported."""
    sink = PlainSink()
    telemetry = Telemetry(
        service="s", use_env=False,
        config={"logging": {"sinks": {"console": False}}, "store": {"enabled": False}},
        log_sinks=[sink], capture_stdlib_logging=False,
    )  # fmt: skip
    try:
        telemetry.get_logger("app").info("hello")
        assert telemetry.pipeline is not None
        assert telemetry.pipeline.flush(5.0) is True
        assert [e["event"] for e in sink.events] == ["hello"]
        assert sink.flushes >= 1
        assert "Log shipping failed" not in capsys.readouterr().err
    finally:
        telemetry.shutdown()
