"""A Telemetry whose configuration names a part that cannot be built raises, and leaves nothing
of itself running."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from telemetry_web import Telemetry
from telemetry_web.errors import MissingExtraError


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_a_part_that_cannot_be_built_stops_the_parts_already_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The OTLP log sink's extra is missing: the error reaches the caller, and the parts built
    before the logging section (the store's metric history thread among them) are stopped, not
    left writing to the store for an object nobody holds."""
    monkeypatch.setitem(sys.modules, "opentelemetry.proto.collector.logs.v1", None)
    store = tmp_path / ".telemetry" / "telemetry.db"
    config = {
        "logging": {"sinks": {"console": False, "otlp": {}}},
        "store": {"enabled": "true", "path": str(store)},
    }
    before = _threads()
    with pytest.raises(MissingExtraError, match=r"logging\.sinks\.otlp needs"):
        Telemetry(config, use_env=False, set_global=False, capture_stdlib_logging=False)
    deadline = time.monotonic() + 5.0
    left = _threads() - before
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {t for t in _threads() - before if t.is_alive()}
    assert [t.name for t in left] == []
