"""The request path compiled with mypyc (``scripts/compile.py``), and the same sources as pure
Python.

``make test`` compiles before the suite runs, so everything else in ``tests/`` exercises the
extensions; the pure-Python path (another Python version, no compiler, an sdist install) is
checked here by running the conformance suite against a copy of ``src`` without them.
"""

from __future__ import annotations

import importlib
import os
import runpy
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPILE = runpy.run_path(str(ROOT / "scripts" / "compile.py"))
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def test_make_test_runs_the_compiled_request_path() -> None:
    """Each listed module is imported from its extension, not from the ``.py`` beside it."""
    built = [path for path in COMPILE["extensions"]() if path.exists()]
    if not built:
        message = "the request path is not compiled: `make compile` (make test runs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    for path in COMPILE["MODULES"]:
        module = importlib.import_module(_module_name(path))
        assert module.__file__ is not None
        assert module.__file__.endswith(SUFFIX), module.__file__


def test_public_classes_stay_open_to_python_code() -> None:
    """Compiled or not, the middleware can be subclassed, is an ASGI 3 app to the servers'
    check, and its instances take new attributes."""
    import asyncio
    import inspect

    from telemetry_web import Telemetry
    from telemetry_web.asgi import TelemetryMiddleware
    from telemetry_web.wsgi import TelemetryWSGIMiddleware

    class Custom(TelemetryMiddleware):
        extra = "kept"

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    telemetry = Telemetry(service="compiled", config={"store": {"enabled": False}}, use_env=False)
    try:
        middleware = Custom(app, telemetry=telemetry)
        middleware.note = "set"  # type: ignore[attr-defined]
        assert middleware.extra == "kept"
        assert middleware.note == "set"  # type: ignore[attr-defined]
        # uvicorn's and Starlette's test for an ASGI 3 app
        assert asyncio.iscoroutinefunction(middleware.__call__)
        assert inspect.iscoroutinefunction(Custom.__call__)
        wsgi = TelemetryWSGIMiddleware(lambda environ, start: [], telemetry=telemetry)
        wsgi.note = "set"  # type: ignore[attr-defined]
    finally:
        telemetry.shutdown()


def test_pure_python_sources_pass_the_conformance_suite(tmp_path: Path) -> None:
    """The ``.py`` files alone (no extension) record the same spans, metrics and log lines."""
    pure = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "telemetry_web",
        pure / "telemetry_web",
        ignore=shutil.ignore_patterns(f"*{SUFFIX}", "__pycache__"),
    )
    env = {**os.environ, "PYTHONPATH": str(pure)}
    where = subprocess.run(
        [sys.executable, "-c", "import telemetry_web._lifecycle as m; print(m.__file__)"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip() == str(pure / "telemetry_web" / "_lifecycle.py")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/conformance"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout.splitlines()[-1]
