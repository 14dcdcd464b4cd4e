"""Flushing and stopping a Telemetry's parts within one budget, and every Telemetry of the
process at exit and on ``SIGTERM``.

Each part (a span exporter's queue, the log pipeline, a metric output, ...) flushes or stops in
a daemon thread of its own, all joined against one deadline: a hung backend uses up its own
share only, and what it still holds when the share runs out is counted as dropped.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace.export import SpanExporter

if TYPE_CHECKING:
    from ._engine import Telemetry
    from .health import Health
    from .logging._pipeline import LogPipeline
    from .tracing._provider import TelemetryTracerProvider

__all__ = ["LIVE", "close_at_exit", "flush_parts", "stop_parts"]

_log = logging.getLogger("telemetry_web")
_Task = tuple[str, Callable[[], object]]

#: Every Telemetry not yet garbage: shut down at exit, flushed on SIGTERM.
LIVE: weakref.WeakSet[Telemetry] = weakref.WeakSet()


def flush_parts(
    timeout: float,
    *,
    provider: TelemetryTracerProvider | None,
    pipeline: LogPipeline | None,
    outputs: Sequence[Any],
) -> None:
    """Deliver what each span exporter's queue and the log pipeline hold, and push each metric
    output's registry as it is now, all at once within ``timeout``."""
    inner = inner_budget(timeout)
    tasks: list[_Task] = []
    if provider is not None:
        millis = int(inner * 1000)
        for processor in provider.batch_processors:
            tasks.append((f"spans {processor.name}",
                          functools.partial(processor.force_flush, millis)))  # fmt: skip
    if pipeline is not None:
        tasks.append(("logs", functools.partial(pipeline.flush, inner)))
    for output in outputs:
        tasks.append((f"metrics {output.name}", functools.partial(output.flush, inner)))
    in_parallel(tasks, timeout)


def stop_parts(
    timeout: float,
    *,
    health: Health,
    provider: TelemetryTracerProvider | None,
    own_exporters: Sequence[SpanExporter],
    pipeline: LogPipeline | None,
    server: Any,
    history: Any,
    alerting: Any,
    outputs: Sequence[Any],
) -> None:
    """Stop every part at once within ``timeout``; see :meth:`Telemetry.shutdown`.

    ``own_exporters``: the application's span exporters, shut down after the queue in front of
    them (in the same thread), or alone when no queue is.
    """
    inner = inner_budget(timeout)
    tasks: list[_Task] = [("health", functools.partial(health.shutdown, inner))]
    own = list(own_exporters)
    for processor in provider.batch_processors if provider is not None else ():
        borrowed = getattr(processor.exporter, "exporter", None)
        mine = next((e for e in own if e is borrowed), None)
        if mine is not None:
            own.remove(mine)
        stop = functools.partial(_stop_processor, processor, inner, mine)
        tasks.append((f"spans {processor.name}", stop))
    for exporter in own:
        tasks.append((f"exporter {type(exporter).__name__}", exporter.shutdown))
    if pipeline is not None:
        tasks.append(("logs", functools.partial(pipeline.shutdown, inner)))
    if server is not None:
        tasks.append(("metrics server", functools.partial(_stop_server, server)))
    if history is not None:  # a last snapshot, when this process writes the history
        tasks.append(("metric history", functools.partial(history.stop, inner)))
    if alerting is not None:  # queued notifications are sent within the budget
        tasks.append(("alerting", functools.partial(alerting.stop, inner)))
    for output in outputs:  # a last push, then the push lock is given up
        tasks.append((f"metrics {output.name}", functools.partial(output.shutdown, inner)))
    in_parallel(tasks, timeout)
    if provider is not None:
        provider.shutdown(0.0)  # its processors are stopped: only the SDK's own part


def inner_budget(timeout: float) -> float:
    """The share of a flush or shutdown budget each component gets: a little less than the
    whole, so that it has counted what it drops by the time the caller's deadline comes."""
    return max(0.0, timeout - min(0.2, timeout * 0.1))


def in_parallel(tasks: Sequence[_Task], timeout: float) -> bool:
    """Run each task in a daemon thread of its own and wait for them until ``timeout``; False
    when one was still running then (it is left to finish on its own)."""
    deadline = time.monotonic() + timeout
    threads = [
        threading.Thread(target=_quietly, args=task, name=f"telemetry-stop-{task[0]}", daemon=True)
        for task in tasks
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        _log.debug("still running at the end of the shutdown budget: %s", ", ".join(stuck))
    return not stuck


def _quietly(name: str, task: Callable[[], object]) -> None:
    try:
        task()
    except Exception:  # one component's failure must not stop the others
        _log.debug("%s failed to stop", name, exc_info=True)


def _stop_processor(processor: Any, timeout: float, exporter: SpanExporter | None) -> None:
    processor.shutdown(timeout)
    if exporter is not None:
        exporter.shutdown()


def _stop_server(server: Any) -> None:
    server.shutdown()
    server.server_close()


# --- every Telemetry of the process -----------------------------------------------------------


def close_at_exit(telemetry: Telemetry) -> None:
    """Shut ``telemetry`` down at interpreter exit and flush it on SIGTERM (held weakly)."""
    LIVE.add(telemetry)
    _flush_on_sigterm()


_sigterm_previous: Any = None
_sigterm_installed = False


def _flush_on_sigterm() -> None:
    """Deliver queued spans and log lines when the process is told to stop.

    uvicorn re-raises SIGTERM after its graceful shutdown and gunicorn workers stop on it, so
    exit hooks may never run; with a lifespan the ASGI middleware flushes at shutdown, without
    one only a signal handler can. Ours is chained in front of whatever handler was there (the
    server's, or the default), never replacing it, and the flush runs in a thread joined with a
    bound, so that a lock held by the interrupted code can only delay the stop, never hang it.
    """
    global _sigterm_previous, _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    try:
        _sigterm_previous = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or signals unavailable
        return
    _sigterm_installed = True


def _on_sigterm(signum: int, frame: Any) -> None:
    def flush_all() -> None:
        for telemetry in list(LIVE):
            with contextlib.suppress(Exception):
                telemetry.flush(timeout=2.0)

    flusher = threading.Thread(target=flush_all, name="telemetry-sigterm-flush", daemon=True)
    flusher.start()
    flusher.join(3.0)
    previous = _sigterm_previous
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # the default action: terminate, as if we were not here
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


@atexit.register
def _shutdown_all() -> None:
    for telemetry in list(LIVE):
        try:
            telemetry.shutdown(timeout=2.0)
        except Exception:  # exiting anyway; never turn a clean exit into a traceback
            pass
