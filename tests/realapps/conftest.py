"""Real open-source apps from PyPI, each in its own venv, run bare and under ``telemetry run``.

See ``_harness.py`` for the checks and ``groundtruth/sitecustomize.py`` for the ground truth.
Build the venvs with ``make realapps`` (``make test`` does it first). Set ``REALAPPS_REPORT``
to a file path to collect each app's one-line-per-check summary there.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here starts real servers: marked ``server`` like tests/launcher's."""
    for item in items:
        if "tests/realapps/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.server)
