"""Turn on prometheus-client's multiprocess mode for the worker processes of ASGI servers.

prometheus-client picks its value storage when it is first imported, from
``PROMETHEUS_MULTIPROC_DIR``. Gunicorn users get the variable from ``telemetry_web.gunicorn``
(a config module run in the master); ``uvicorn --workers N``, ``hypercorn --workers N`` and
``granian --workers N`` spawn fresh interpreters that never run any code of ours before the
app's, so this module, imported first by ``telemetry_web/__init__.py`` (and called again by the
launcher's hooks), sets the variable in each worker: one directory per supervisor (the workers'
parent process). ``TELEMETRY_MULTIPROCESS=0`` switches this off.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile
import warnings

from ._forksafe import pid_alive

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
DIR_PREFIX = "telemetry-web-metrics-"


def _remove_stale_dirs(root: str, keep: str) -> None:
    """Directories left by supervisors that are gone (a restart gets a new directory)."""
    for name in os.listdir(root):
        if not name.startswith(DIR_PREFIX) or os.path.join(root, name) == keep:
            continue
        pid = name[len(DIR_PREFIX) :]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


#: Servers whose ``--workers`` are interpreters spawned by a supervisor process.
SPAWNING_SERVERS = ("uvicorn", "hypercorn", "granian")


def in_server_worker() -> bool:
    """Whether this process is a worker spawned by a uvicorn, hypercorn or granian supervisor."""
    if multiprocessing.parent_process() is None:
        return False
    return any(name in sys.modules for name in SPAWNING_SERVERS)


def prepare() -> None:
    if os.environ.get(ENV_DIR) or os.environ.get("TELEMETRY_MULTIPROCESS") == "0":
        return
    if not in_server_worker():
        return
    if "prometheus_client.values" in sys.modules:
        warnings.warn(
            "telemetry-web: prometheus_client was imported before telemetry_web in a server "
            "worker, so /metrics shows this worker only; import telemetry_web first or set "
            f"{ENV_DIR}",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    root = tempfile.gettempdir()
    path = os.path.join(root, f"{DIR_PREFIX}{os.getppid()}")
    os.makedirs(path, exist_ok=True)
    try:
        _remove_stale_dirs(root, keep=path)
    except OSError:
        pass
    os.environ[ENV_DIR] = path
