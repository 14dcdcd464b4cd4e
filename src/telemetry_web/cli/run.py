"""``telemetry run -- <command...>``: run an unchanged app with telemetry.

    telemetry run -- uvicorn app:app
    telemetry run -- gunicorn -w 4 app:app
    telemetry-instrument python manage.py runserver

The directory of the launcher's ``sitecustomize.py`` goes first on ``PYTHONPATH`` and the command
replaces this process (``exec``: same pid, signals and exit status reach the app directly). Each
Python process started from it instruments what it imports (see :mod:`telemetry_web._launcher`).
Configuration comes from ``TELEMETRY_CONFIG`` and the ``TELEMETRY_*``/``OTEL_*`` variables;
``TELEMETRY_DISABLED_INSTRUMENTATIONS=redis,httpx`` skips instrumentations by name.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence

import click

from .._launcher import BOOTSTRAP_DIR

__all__ = ["instrument_main", "launch_environment", "resolve_executable", "run"]

_COMMAND_NOT_FOUND = 127


def launch_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with the bootstrap directory first on ``PYTHONPATH`` (once)."""
    env = dict(environ)
    entries = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *entries])
    return env


def resolve_executable(name: str, environ: Mapping[str, str]) -> str | None:
    """``name`` on ``PATH``, else next to this interpreter (a virtualenv not activated)."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name, path=environ.get("PATH")) or shutil.which(
        name, path=os.path.dirname(sys.executable)
    )


def _exec(command: Sequence[str]) -> None:
    env = launch_environment(os.environ)
    executable = resolve_executable(command[0], env)
    if executable is None:
        click.echo(f"telemetry run: command not found: {command[0]}", err=True)
        sys.exit(_COMMAND_NOT_FOUND)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, [command[0], *command[1:]], env)


@click.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command: tuple[str, ...]) -> None:
    """Run COMMAND (after --) with telemetry: an unchanged uvicorn, gunicorn, Django, Flask or
    plain Python app gets spans, metrics, logs and /metrics, /health, /ready.

    \b
    Examples:
      telemetry run -- uvicorn app:app
      telemetry run -- gunicorn -w 4 app:app
      telemetry run -- python manage.py runserver

    Instrumentations can be switched off by name with
    TELEMETRY_DISABLED_INSTRUMENTATIONS=redis,httpx.
    """
    _exec(command)


def instrument_main(argv: Sequence[str] | None = None) -> None:
    """``telemetry-instrument <command...>``: the same as ``telemetry run -- <command...>``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        click.echo(
            "Usage: telemetry-instrument COMMAND [ARGS]...\n\n"
            "Run COMMAND with telemetry (the same as `telemetry run -- COMMAND`).",
            err=not args,
        )
        sys.exit(0 if args else 2)
    _exec(args)


if __name__ == "__main__":
    run(prog_name="telemetry run")
