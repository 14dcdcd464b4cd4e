"""mypy over ``src`` and ``tests`` (``[tool.mypy] files``), run by ``make test`` as CI runs it.

``make typecheck`` runs the same check; this test keeps it in the one command CI runs. It takes
about 15 s on a cold cache and 2 s on a warm one (its own cache under ``.mypy_cache/``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_passes_over_src_and_tests() -> None:
    """``mypy`` with the project's strict configuration reports no error in src or tests."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(ROOT / ".mypy_cache" / "test-typing")],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
