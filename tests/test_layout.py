"""The package's shape: small modules with one job each (issue 18's limit of 500 lines)."""

from __future__ import annotations

from pathlib import Path

import telemetry_web

PACKAGE = Path(telemetry_web.__file__).parent
MAX_LINES = 500


def test_no_module_is_over_500_lines() -> None:
    """A module that grows past 500 lines is doing two jobs: split it by job, not by size."""
    sizes = {
        str(path.relative_to(PACKAGE)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert len(sizes) > 100  # the whole package was read
    too_long = {name: lines for name, lines in sizes.items() if lines > MAX_LINES}
    assert too_long == {}
