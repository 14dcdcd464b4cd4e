"""The launcher's pieces in-process: environment, command resolution, hooks' safety."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from telemetry_web._launcher import BOOTSTRAP_DIR, _bootstrap, disabled_instrumentations
from telemetry_web.cli.run import instrument_main, launch_environment


def test_bootstrap_dir_holds_sitecustomize() -> None:
    """The directory put on PYTHONPATH contains the sitecustomize module."""
    assert os.path.isfile(os.path.join(BOOTSTRAP_DIR, "sitecustomize.py"))


def test_launch_environment_prepends_the_bootstrap_once() -> None:
    """The bootstrap goes first on PYTHONPATH, existing entries are kept, and twice is once."""
    env = launch_environment({"PYTHONPATH": os.pathsep.join(["/a", "/b"])})
    assert env["PYTHONPATH"].split(os.pathsep) == [BOOTSTRAP_DIR, "/a", "/b"]
    assert launch_environment(env)["PYTHONPATH"] == env["PYTHONPATH"]
    assert launch_environment({})["PYTHONPATH"] == BOOTSTRAP_DIR


def test_disabled_instrumentations_are_parsed_by_name() -> None:
    """Names are comma-separated, trimmed and case-insensitive."""
    env = {"TELEMETRY_DISABLED_INSTRUMENTATIONS": " Redis, httpx,,"}
    assert disabled_instrumentations(env) == {"redis", "httpx"}
    assert disabled_instrumentations({}) == set()


def test_instrument_main_without_a_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`telemetry-instrument` with nothing to run exits 2 with a usage line."""
    with pytest.raises(SystemExit) as exit_info:
        instrument_main([])
    assert exit_info.value.code == 2
    assert "Usage: telemetry-instrument COMMAND" in capsys.readouterr().err


def test_unknown_command_exits_127() -> None:
    """A command not on PATH is reported and exits 127, as a shell would."""
    result = subprocess.run(
        [sys.executable, "-m", "telemetry_web.cli.run", "--", "no-such-command-xyz"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 127
    assert "command not found: no-such-command-xyz" in result.stderr


def test_run_execs_the_command_with_the_bootstrap_loaded() -> None:
    """The command runs unchanged, with the launcher's sitecustomize imported at start."""
    code = "import sitecustomize, sys; print(sitecustomize.__file__); print(sys.argv[1:])"
    result = subprocess.run(
        [sys.executable, "-m", "telemetry_web.cli.run", "--", sys.executable, "-c", code, "-x"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert lines == [os.path.join(BOOTSTRAP_DIR, "sitecustomize.py"), "['-x']"]


def test_initialize_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception while registering the hooks is logged, not raised."""
    from telemetry_web._launcher import _hooks

    def broken(disabled: set[str]) -> list[str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(_hooks, "register", broken)
    monkeypatch.setattr(_bootstrap, "_initialized", False)
    _bootstrap.initialize()  # no exception
    assert _bootstrap._initialized


def test_gunicorn_hooks_are_chained_before_configured_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The master's child_exit runs ours then the configured one; applying twice adds nothing."""
    import types

    from gunicorn.config import Config

    from telemetry_web._launcher._hooks import _configure_gunicorn

    calls: list[str] = []
    # Stands in for telemetry_web.gunicorn, whose import would set PROMETHEUS_MULTIPROC_DIR here.
    fake = types.ModuleType("telemetry_web.gunicorn")
    fake.child_exit = lambda server, worker: calls.append("ours")  # type: ignore[attr-defined]
    fake.on_exit = lambda server: calls.append("ours on_exit")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "telemetry_web.gunicorn", fake)
    import telemetry_web

    monkeypatch.setattr(telemetry_web, "gunicorn", fake, raising=False)

    def configured(server: object, worker: object) -> None:
        calls.append("configured")

    cfg = Config()
    cfg.set("child_exit", configured)
    _configure_gunicorn(cfg)
    chained = cfg.child_exit
    _configure_gunicorn(cfg)
    assert cfg.child_exit is chained
    chained(object(), object())
    cfg.on_exit(object())
    assert calls == ["ours", "configured", "ours on_exit"]


def test_launcher_modules_import_one_way() -> None:
    """No import cycle: _bootstrap → _hooks → _servers → _process, and nothing imports back."""
    import ast
    from pathlib import Path

    package = Path(_bootstrap.__file__).parent
    order = ["_bootstrap", "_hooks", "_servers", "_notice", "_access", "_process"]
    for name in order:
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                imported |= {node.module} if node.module else {a.name for a in node.names}
        earlier = set(order[: order.index(name) + 1])
        assert not imported & earlier, f"{name} imports {sorted(imported & earlier)}"
