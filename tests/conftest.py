"""Suite-wide fixtures and service requirements.

A test that needs a tool or service fails (never skips) when ``CI=true`` and it is missing.
"""

from __future__ import annotations

import os
import runpy
import shutil
from pathlib import Path

import pytest

_COMPILE = Path(__file__).resolve().parent.parent / "scripts" / "compile.py"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test an extension older than its source: CPython would import the extension
    (scripts/compile.py), and the edit under test would not run."""
    stale = runpy.run_path(str(_COMPILE))["stale"]()
    if stale:
        raise pytest.UsageError(
            f"compiled modules older than their source: {', '.join(stale)}; run `make compile`"
            " (or `python scripts/compile.py --clean` to test the pure-Python path)"
        )


def require_tool(name: str) -> str:
    """The path of a command-line tool; under CI its absence is a failure, elsewhere a skip."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it: scripts/ensure-services.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
