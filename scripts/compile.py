"""Compile the request path with mypyc, in place: ``make compile`` (``make test`` and
``make bench`` run it first).

The modules below run on every request (the middleware and adapters, the lifecycle, the span,
propagation, the span and log queues, the request line's renderer). mypyc turns their
type-annotated Python into a C extension that CPython imports instead of the ``.py`` beside
it; the ``.py`` stays the source and what runs wherever no extension was built (another Python
version, no compiler, or ``python scripts/compile.py --clean``).

Each extension is rebuilt when any compiled module changed since it was built; a test session
refuses to run with an extension older than its source (``tests/conftest.py``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
BUILD = ROOT / "build" / "mypyc"
# One group: calls between these modules are direct C calls.
GROUP = "telemetry_web"
MODULES = (
    "telemetry_web/_http/asgi_core.py",
    "telemetry_web/wsgi.py",
    "telemetry_web/_lifecycle.py",
    "telemetry_web/_http/exchange.py",
    "telemetry_web/_http/scope.py",
    "telemetry_web/_http/environ.py",
    "telemetry_web/_http/error_responses.py",
    "telemetry_web/_http/routes/_starlette.py",
    "telemetry_web/django/_recording.py",
    "telemetry_web/django/_request.py",
    "telemetry_web/django/_routes.py",
    "telemetry_web/tracing/_span.py",
    "telemetry_web/tracing/_batch.py",
    "telemetry_web/tracing/_packed.py",
    "telemetry_web/tracing/_propagation.py",
    "telemetry_web/logging/_pipeline.py",
    "telemetry_web/logging/_context.py",
    "telemetry_web/logging/_request_line.py",
    "telemetry_web/logging/_timestamps.py",
    "telemetry_web/metrics/_slots.py",
)
_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


def _extension(module: str) -> Path:
    return SRC / (module.removesuffix(".py") + _SUFFIX)


def extensions() -> list[Path]:
    """Every extension a build leaves in ``src`` (the group's shared library included)."""
    return [*map(_extension, MODULES), SRC / f"{GROUP}__mypyc{_SUFFIX}"]


def stale() -> list[str]:
    """The compiled modules whose source changed after their extension was built."""
    return [
        module
        for module in MODULES
        if _extension(module).exists()
        and (SRC / module).stat().st_mtime > _extension(module).stat().st_mtime
    ]


def clean() -> None:
    """Remove every extension in ``src``, those of modules no longer listed too."""
    for path in [*SRC.glob(f"telemetry_web/**/*{_SUFFIX}"), *SRC.glob(f"*{_SUFFIX}")]:
        path.unlink()
    shutil.rmtree(BUILD, ignore_errors=True)


def up_to_date() -> bool:
    return all(path.exists() for path in extensions()) and not stale()


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    os.environ.setdefault("MYPY_CACHE_DIR", str(BUILD / "mypy-cache"))
    os.chdir(SRC)  # mypyc names each module by its path from here; --inplace writes beside it
    setup(
        name="telemetry-web-compiled",
        ext_modules=mypycify(
            list(MODULES), opt_level="3", group_name=GROUP, target_dir=str(BUILD / "c")
        ),
        script_args=[
            "--quiet",
            "build_ext",
            "--inplace",
            "--build-temp",
            str(BUILD / "temp"),
            "--build-lib",
            str(BUILD / "lib"),
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove the extensions: pure Python")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    if args.clean:
        clean()
        return 0
    if up_to_date() and not args.force:
        print("compile: the request path's extensions are up to date", file=sys.stderr)
        return 0
    clean()
    build()
    print(f"compile: {len(MODULES)} modules compiled into {SRC / 'telemetry_web'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
