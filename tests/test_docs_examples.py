"""The code blocks of README.md and docs/ run, type-check or validate (docs/development.md).

- ``python`` blocks run in a fresh interpreter in an empty directory; a block marked
  ``<!-- example: typecheck -->`` is checked by mypy instead (undefined names allowed);
  ``setup=telemetry`` puts a ``telemetry`` object in front of it.
- ``yaml`` blocks are telemetry configuration, validated by ``load_settings``.
- ``json`` blocks parse; ``sh`` blocks name only existing ``telemetry`` commands and options.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import yaml

from telemetry_web import ConfigError, load_settings
from telemetry_web.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SETUPS = {
    "telemetry": 'from telemetry_web import Telemetry\ntelemetry = Telemetry(service="orders")\n',
}
_FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
_MARK = re.compile(r"^<!-- example: (.+) -->$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its code and its marker words."""

    page: Path
    line: int
    lang: str
    code: str
    marks: frozenset[str]

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def setup(self) -> str:
        return "".join(SETUPS[m.split("=", 1)[1]] for m in self.marks if m.startswith("setup="))


def _blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while not lines[end].strip().startswith("```"):
            end += 1
        previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
        mark = _MARK.match(previous.strip())
        code = textwrap.dedent("\n".join(lines[index + 1 : end])) + "\n"
        marks = frozenset(mark.group(1).split()) if mark else frozenset()
        blocks.append(Block(page, index + 1, opening.group(2), code, marks))
        index = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in _blocks(page)]


def _of(lang: str, *, typecheck: bool | None = None) -> list[Block]:
    return [
        b
        for b in BLOCKS
        if b.lang == lang and (typecheck is None or ("typecheck" in b.marks) == typecheck)
    ]


def _params(blocks: list[Block]) -> list[object]:
    return [pytest.param(b, id=b.id) for b in blocks]


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEMETRY_", "OTEL_", "PROMETHEUS_MULTIPROC"))
    }


def test_every_block_is_checked() -> None:
    """Every python, yaml, json and sh block is covered, and there are blocks of each kind."""
    languages = {b.lang for b in BLOCKS}
    assert {"python", "yaml", "json", "sh"} <= languages
    assert languages <= {"python", "yaml", "json", "sh", "text", ""}
    assert all(m in {"typecheck", "not-config"} or m.startswith("setup=") for b in BLOCKS
               for m in b.marks)  # fmt: skip


@pytest.mark.parametrize("block", _params(_of("python", typecheck=False)))
def test_python_example_runs(block: Block, tmp_path: Path) -> None:
    """The block runs to the end in a fresh interpreter, in an empty directory."""
    script = tmp_path / "example.py"
    script.write_text(block.setup() + block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{block.id} failed:\n{result.stderr[-3000:]}"


def test_python_fragments_typecheck(tmp_path: Path) -> None:
    """The blocks that cannot run alone pass mypy: names and signatures of telemetry-web hold."""
    fragments = _of("python", typecheck=True)
    assert fragments
    files: dict[str, Block] = {}
    for number, block in enumerate(fragments):
        files[f"example_{number}.py"] = block
        (tmp_path / f"example_{number}.py").write_text(block.setup() + block.code, "utf-8")
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\npython_version = 3.10\ncheck_untyped_defs = true\nignore_missing_imports = true\n"
        "disable_error_code = name-defined, top-level-await\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary",
         "--cache-dir", str(ROOT / ".mypy_cache" / "docs-examples"), *sorted(files)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, re.sub(r"(example_\d+\.py):(\d+):", _where(files), result.stdout)


def _where(files: dict[str, Block]) -> Callable[[re.Match[str]], str]:
    """mypy's ``example_N.py:L:`` as the page and line of the documentation."""

    def replace(match: re.Match[str]) -> str:
        block = files[match.group(1)]
        line = int(match.group(2)) - block.setup().count("\n") + block.line
        return f"{block.page.relative_to(ROOT)}:{line}:"

    return replace


def _is_config(block: Block) -> bool:
    return "not-config" not in block.marks


@pytest.mark.parametrize("block", _params([b for b in _of("yaml") if _is_config(b)]))
def test_yaml_configuration_is_valid(block: Block) -> None:
    """Each configuration example is accepted by load_settings, whole."""
    data = yaml.safe_load(block.code)
    assert isinstance(data, dict), f"{block.id}: not a mapping"
    try:
        load_settings(data, use_env=False)
    except ConfigError as exc:
        pytest.fail(f"{block.id}: {exc}")


@pytest.mark.parametrize("block", _params(_of("json")))
def test_json_example_parses(block: Block) -> None:
    """JSON answers shown in the docs are JSON."""
    json.loads(block.code)


def _command_lines(code: str) -> list[str]:
    """The ``telemetry …`` command lines of a shell block, continuation lines joined."""
    commands: list[str] = []
    for raw in code.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not line.strip():
            continue
        stripped = line.strip().removeprefix("$ ")
        if stripped.startswith("telemetry "):
            commands.append(stripped)
        elif raw.startswith(" ") and commands and commands[-1] is not None:
            commands[-1] += " " + stripped
    return commands


def _check_command(line: str) -> None:
    words = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
    command: click.Command = cli_main
    path = ["telemetry"]
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        sub = command.get_command(click.Context(command), words[0])
        assert sub is not None, f"{' '.join(path)} has no command {words[0]!r}: {line}"
        command, path = sub, [*path, words.pop(0)]
    options = {name for p in command.params for name in (*p.opts, *p.secondary_opts)}
    options |= {"-h", "--help"}
    for word in words:
        if word == "--":
            break
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            assert name in options, f"{' '.join(path)} has no option {name}: {line}"


SHELL_BLOCKS = [b for b in _of("sh") if _command_lines(b.code)]


@pytest.mark.parametrize("block", _params(SHELL_BLOCKS))
def test_shell_commands_exist(block: Block) -> None:
    """Every ``telemetry`` command line names existing subcommands and options."""
    for line in _command_lines(block.code):
        _check_command(line)


def test_shell_checker_rejects_unknown_names() -> None:
    """The shell check fails on a subcommand or an option the CLI does not have."""
    _check_command("telemetry traces search --status error --since 15m")
    with pytest.raises(AssertionError, match="no command 'serach'"):
        _check_command("telemetry traces serach")
    with pytest.raises(AssertionError, match="no option --colour"):
        _check_command("telemetry logs tail --colour")
