"""How the pipeline flushes its sinks: ours get the time left, a stream's flush() nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telemetry_web import Telemetry


class TimedSink:
    """A sink whose flush takes the time left (as the shipping sinks' do)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.budgets: list[float] = []

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        self.events.extend(events)

    def flush(self, timeout: float) -> bool:
        self.budgets.append(timeout)
        return True


class StreamSink:
    """A sink whose flush takes nothing and returns False: not everything was delivered."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.flushes = 0

    def write(self, events: Sequence[dict[str, Any]]) -> None:
        self.events.extend(events)

    def flush(self) -> bool:
        self.flushes += 1
        return False


def test_each_sink_is_flushed_as_its_flush_expects_on_every_flush() -> None:
    """Flushed twice: the timed sink gets a budget within the caller's each time, the stream
    sink is called without one, and its False makes the flush report not delivered."""
    timed, stream = TimedSink(), StreamSink()
    telemetry = Telemetry(
        service="s", use_env=False,
        config={"logging": {"sinks": {"console": False}}, "store": {"enabled": False}},
        log_sinks=[timed, stream], capture_stdlib_logging=False,
    )  # fmt: skip
    try:
        pipeline = telemetry.pipeline
        assert pipeline is not None
        for round_ in range(2):
            telemetry.get_logger("app").info("line", round=round_)
            assert pipeline.flush(3.0) is False
        assert len(timed.budgets) == 2
        assert all(0.0 < budget <= 3.0 for budget in timed.budgets)
        assert stream.flushes == 2
        assert [e["round"] for e in timed.events] == [e["round"] for e in stream.events] == [0, 1]
    finally:
        telemetry.shutdown()
