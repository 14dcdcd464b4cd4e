"""Gunicorn settings for telemetry-web: one ``/metrics`` for all workers.

    gunicorn -c python:telemetry_web.gunicorn -w 4 app:app

or, with a configuration file of your own, take the hooks from here::

    # gunicorn.conf.py
    from telemetry_web.gunicorn import child_exit  # noqa: F401  (sets up the metrics directory)

Importing this module in the master (before any worker starts or the app is preloaded) points
prometheus-client's multiprocess mode at a fresh directory: ``$PROMETHEUS_MULTIPROC_DIR`` if
set, emptied, or a new temporary one. ``child_exit`` retires each worker that exits (recycled by
``--max-requests``, crashed or killed): its counts are kept, its in-progress gauges are not.
Span exporters and the log writer are re-created in each worker after fork by telemetry-web
itself; nothing else is needed.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any

_created: str | None = None


def _prepare_directory() -> str:
    global _created
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)  # a previous run's samples would be counted again
    else:
        path = _created = tempfile.mkdtemp(prefix="telemetry-web-gunicorn-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


MULTIPROCESS_DIR = _prepare_directory()


def child_exit(server: Any, worker: Any) -> None:
    """Gunicorn hook (master): a worker has exited."""
    from telemetry_web.metrics._multiprocess import retire_worker

    try:
        retire_worker(worker.pid, MULTIPROCESS_DIR)
    except OSError as exc:
        server.log.warning(
            "telemetry-web: could not retire worker %s's metrics: %s", worker.pid, exc
        )


def on_exit(server: Any) -> None:
    """Gunicorn hook (master): shutting down; remove the directory if we made it."""
    if _created is not None:
        shutil.rmtree(_created, ignore_errors=True)
