"""Suite-wide fixtures and service requirements.

A test that needs a tool or service fails (never skips) when ``CI=true`` and it is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """The path of a command-line tool; under CI its absence is a failure, elsewhere a skip."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it: scripts/ensure-services.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
