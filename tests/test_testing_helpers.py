"""telemetry_web.testing: the in-memory capture users test their own instrumentation with."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from telemetry_web.testing import capture_telemetry


def test_capture_collects_spans_logs_and_metric_samples() -> None:
    """One request through the lifecycle shows up in spans(), logs() and sample()."""
    captured = capture_telemetry(service="shop", labels={"team": "core"})
    try:
        active = captured.telemetry.lifecycle.begin(
            method="POST", scheme="http", path="/checkout", query="", route="/checkout",
            headers={}, client=None,
        )  # fmt: skip
        captured.telemetry.get_logger("shop").info("charged", amount=3)
        logging.getLogger("shop.stdlib").warning("slow payment provider")
        active.finish(201, request_size=10, response_size=20)
        assert [s.name for s in captured.spans()] == ["POST /checkout"]
        events = {e["event"]: e for e in captured.logs()}
        assert events["charged"]["amount"] == 3
        assert events["charged"]["service"] == "shop"
        assert events["slow payment provider"]["logger"] == "shop.stdlib"
        assert events["request"]["status"] == 201
        assert (
            captured.sample(
                "http_requests_total", team="core", method="POST", route="/checkout", status="201"
            )
            == 1.0
        )
        assert 'team="core"' in captured.metrics_text()
        captured.clear()
        assert captured.spans() == []
        assert captured.logs() == []
    finally:
        captured.close()


def test_capture_keeps_no_local_store_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from a directory, a capture leaves no ``.telemetry`` store there; a ``store``
    section in its config is honoured."""
    monkeypatch.chdir(tmp_path)
    captured = capture_telemetry(service="shop")
    try:
        captured.telemetry.get_logger("shop").info("charged")
        assert [e["event"] for e in captured.logs()] == ["charged"]
        assert captured.telemetry.settings.store.enabled == "false"
    finally:
        captured.close()
    assert not (tmp_path / ".telemetry").exists()
    path = tmp_path / "kept" / "telemetry.db"
    kept = capture_telemetry(config={"store": {"enabled": "true", "path": str(path)}})
    try:
        assert kept.telemetry.settings.store.enabled == "true"
        kept.telemetry.get_logger("shop").info("stored")
        kept.telemetry.flush()
    finally:
        kept.close()
    assert path.exists()
