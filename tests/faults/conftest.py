"""Fixtures of the fault suite: a tiny filesystem to fill, and a fresh store reporter."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry_web.store._db import REPORTER


@pytest.fixture(autouse=True)
def _fresh_store_reporter() -> None:
    """The store's once-per-period report is process-wide: each case starts a new period."""
    REPORTER.reset()


def tiny_filesystem(directory: Path, size: str = "256k") -> Iterator[Path]:
    """Mount a ``size`` tmpfs on ``directory`` for the test, unmounted afterwards.

    Mounting needs root: without it the test fails under ``CI=true`` (CI runs as root) and is
    skipped elsewhere.
    """
    directory.mkdir(parents=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        message = f"cannot mount a {size} tmpfs (needs root): {result.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
