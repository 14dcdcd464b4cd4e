"""The docs site: generated reference pages equal to the code, a strict build, a short README."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from telemetry_web.config import TelemetrySettings

ROOT = Path(__file__).resolve().parent.parent


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _gen_docs()


def test_generated_pages_are_current() -> None:
    """The committed reference pages are what scripts/gen_docs.py writes (run `make docs`).
    Run as `make docs` runs it, in a fresh interpreter: the CLI page renders click's help,
    which other tests in this process may have touched."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_configuration_reference_names_every_key() -> None:
    """Every section and key of the model has a row, with its default and expectation text."""
    text = GEN.config_reference()
    for path, cls, _listed in GEN._sections(TelemetrySettings):
        assert f"## {path or 'Top-level keys'} " in text
        assert cls is not None
    assert "| `scrape_interval` | duration | `15s` | How often the local store snapshots" in text
    assert "Expects a positive duration such as '500ms' or '15s'." in text
    assert "| `path` | string | `./.telemetry/telemetry.db` |" in text
    assert "Environment: `TELEMETRY_STORE__PATH`." in text
    assert "| `for` | duration \\| `null` | `null` |" in text  # the key, not the field `for_`
    assert "| `max_queue_bytes` | size | `4MiB` |" in text
    assert "| `rate` | number \\| `null` | `null` | Expects a positive number. Only with " in text
    assert "## metrics.exporters[] {#metrics-exporters}" in text
    assert "| `root` | [section](#tracing-sampling) \\| `null` |" in text


def test_cli_reference_has_every_command() -> None:
    """Every command and subcommand of `telemetry` has its --help in the CLI reference."""
    text = GEN.cli_reference()
    for heading in ("## telemetry", "## telemetry traces search", "## telemetry logs tail",
                    "## telemetry metrics query", "## telemetry run", "## telemetry ui",
                    "## telemetry alerts list", "## telemetry config check"):  # fmt: skip
        assert f"\n{heading}\n" in text
    assert "Usage: telemetry traces search [OPTIONS]" in text


def test_site_builds_strictly(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: no broken link, anchor, reference or orphan page."""
    if importlib.util.find_spec("mkdocs") is None:
        message = "mkdocs is not installed (make test installs the docs extra)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").exists()
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("telemetry_web.Telemetry", "telemetry_web.flask.FlaskTelemetry",
                 "telemetry_web.asgi.TelemetryMiddleware",
                 "telemetry_web.django.DjangoTelemetryMiddleware",
                 "telemetry_web.wsgi.TelemetryWSGIMiddleware",
                 "telemetry_web.instrumentors.SQLAlchemyInstrumentor",
                 "telemetry_web.testing.capture_telemetry"):  # fmt: skip
        assert f'id="{name}"' in api


def test_readme_is_a_front_page() -> None:
    """README.md stays under 200 lines, starts with the install line and links only to files."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    assert text.index("pip install 'telemetry-web[fastapi]'") < 1000
    assert "./.telemetry/telemetry.db" in text
    assert "make test" in text
    assert "make demo" in text
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to a missing file: {target}"


def test_ui_screenshot_is_shown() -> None:
    """docs/ui.png, the telemetry ui screenshot, is shown on the UI page."""
    assert (ROOT / "docs" / "ui.png").exists()
    assert "](ui.png)" in (ROOT / "docs" / "ui.md").read_text(encoding="utf-8")
