"""The :class:`Health` of one Telemetry: its checks, their runner, metrics, logs and reports."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .. import semconv as sc
from .._forksafe import ForkLock
from ..errors import ConfigError, MissingExtraError
from ._checks import Check, error_text
from ._clients import as_check, build_check
from ._report import Report, Response, SourceResult
from ._runner import Entry, LagMonitor, Scheduler, TaskHost, ThreadHost, execute
from ._state import CheckOptions, Clock, Outcome, Snapshot, SystemClock, Transition, advance

if TYPE_CHECKING:
    from ..config import HealthSettings
    from ..metrics._registry import Metric, MetricSet

__all__ = ["Health"]

F = TypeVar("F", bound=Callable[..., Any])
# health_check_duration_seconds: a check takes from a millisecond to its timeout.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Health:
    """Dependency checks run in the background, and the liveness and readiness reports.

    Args:
        service: the service name shown in the reports.
        metrics: where ``health_check_status`` and ``health_check_duration_seconds`` go.
        logger: returns the structlog logger state changes and failing probes are logged to.
        clock: wall and monotonic time (:class:`~._state.ManualClock` in tests).
    """

    def __init__(
        self,
        service: str,
        *,
        metrics: MetricSet | None = None,
        logger: Callable[[], Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.clock: Clock = clock or SystemClock()
        self._started = self.clock.monotonic()
        self._logger = logger
        self._entries: dict[str, Entry] = {}  # replaced, never mutated: readers take no lock
        self._sources: dict[str, Callable[[], SourceResult]] = {}
        self._lock = ForkLock(after_in_child=self._after_fork)
        self._host: ThreadHost | TaskHost | None = None
        self._mode: str | None = None  # "thread" or "task" once an adapter asked to start
        self._stopped = False  # stop() was called: requests do not start the runner again
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lag: LagMonitor | None = None
        self._max_lag: float | None = None
        self._report = Report(service)
        self._answered: bool | None = None  # the last readiness answer, for its log line
        self._answer_lock = threading.Lock()
        self.verbose_token: str | None = None
        self._metrics = metrics
        self._status_metric: Metric | None = None
        self._duration_metric: Metric | None = None

    # --- registering checks -------------------------------------------------------------------

    def add_check(
        self,
        name: str,
        check: Any,
        *,
        critical: bool = True,
        interval: float = 10.0,
        timeout: float = 5.0,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 1,
    ) -> Check:
        """Run ``check`` in the background from now on (or from the app's start).

        ``check`` is a :class:`~telemetry_web.health.Check`, a SQLAlchemy engine, a Redis
        client or a function (sync or async). Registering a name again replaces that check and
        keeps its state (hot reloads do not make the service unready).

        Raises:
            TypeError: ``check`` is none of these.
            ValueError: an empty name, or options out of range.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a health check needs a name, got {name!r}")
        options = CheckOptions(
            critical=critical, interval=interval, timeout=timeout,
            unhealthy_threshold=unhealthy_threshold, healthy_threshold=healthy_threshold,
        )  # fmt: skip
        built = as_check(check)
        self._put(Entry(name, built, options, "code"))
        return built

    def check(self, name: str, **options: Any) -> Callable[[F], F]:
        """Decorator form of :meth:`add_check` for a function; the function is returned as is."""

        def register(function: F) -> F:
            self.add_check(name, function, **options)
            return function

        return register

    def remove_check(self, name: str) -> None:
        with self._lock:
            entries = dict(self._entries)
            entry = entries.pop(name, None)
            self._entries = entries
        if entry is not None:
            entry.check.close()
            self._wake()

    def add_source(self, name: str, source: Callable[[], SourceResult]) -> None:
        """Register a function returning the *latest known* state of something checked
        elsewhere (never blocking); it is read at each readiness probe."""
        with self._lock:
            self._sources = {**self._sources, name: source}

    def configure(self, settings: HealthSettings, *, verbose_token: str | None = None) -> None:
        """Replace the checks that came from the configuration (code-registered ones stay);
        ``verbose_token``: the bearer token ``/ready?verbose`` requires (None: open)."""
        built, problems = [], []
        for i, c in enumerate(settings.checks):
            try:
                built.append(Entry(c.name, build_check(c.check), _options(c), "config"))
            except MissingExtraError:
                raise
            except Exception as exc:  # an import path that does not import, a bad URL
                key = "target" if c.check.type == "function" else "url"
                problems.append(f"health.checks[{i}].check.{key}: {error_text(exc)}")
        if problems:
            raise ConfigError(problems)
        self._max_lag = settings.max_event_loop_lag
        self.verbose_token = verbose_token
        for entry in built:
            self._put(entry)
        keep = {e.name for e in built}
        for name, entry in list(self._entries.items()):
            if entry.source == "config" and name not in keep:
                self.remove_check(name)

    def _register_metrics(self) -> None:
        """The two health metric families, registered with the first check (a service without
        checks shows none)."""
        metrics = self._metrics
        if metrics is None or self._status_metric is not None:
            return
        self._status_metric = (
            metrics.builder("gauge", sc.HEALTH_CHECK_STATUS)
            .with_description("1 while the health check is healthy, else 0 (pending too).")
            .with_label_keys(sc.LABEL_CHECK)
            .with_multiprocess_mode("livemin")  # several workers: 0 if any sees it failing
            .register()
        )
        self._duration_metric = (
            metrics.builder("histogram", sc.HEALTH_CHECK_DURATION)
            .with_description("How long each run of a health check took, timeouts included.")
            .with_label_keys(sc.LABEL_CHECK)
            .with_buckets(DURATION_BUCKETS)
            .register()
        )

    def _put(self, entry: Entry) -> None:
        with self._lock:
            self._register_metrics()
            entries = dict(self._entries)
            old = entries.get(entry.name)
            if old is not None:
                entry.snapshot = old.snapshot
            else:
                self._set_status_metric(entry.name, entry.snapshot)
            entries[entry.name] = entry
            self._entries = entries
        if old is not None and old.check is not entry.check:
            old.check.close()
        self._wake()

    def names(self) -> list[str]:
        return sorted(self._entries)

    def snapshot(self, name: str) -> Snapshot:
        """The latest state of the check ``name`` (KeyError if there is none)."""
        return self._entries[name].snapshot

    # --- running ------------------------------------------------------------------------------

    @property
    def needs_start(self) -> bool:
        """Whether an adapter should start the runner now (cheap: read on every request)."""
        host = self._host
        return bool(self._entries) and not self._stopped and (host is None or not host.alive())

    def start(self, *, thread: bool | None = None) -> None:
        """Run the checks in the background from now on; idempotent.

        ``thread=False``: as a task on the running event loop (ASGI). ``thread=True``: in a
        daemon thread with a loop of its own (WSGI). ``None``: the loop when called from one.
        Nothing is started while there are no checks; the first one added starts it.
        """
        if thread is None:
            thread = not _in_event_loop()
        with self._lock:
            self._stopped = False
            self._mode = "thread" if thread else "task"
            if not thread:
                self._loop = asyncio.get_running_loop()
            self._start_host()

    def _start_host(self) -> None:
        host = self._host
        if host is not None and host.alive():
            return
        wants_lag = self._mode == "task" and self._max_lag is not None
        if not self._entries and not wants_lag:
            return
        scheduler = Scheduler(lambda: list(self._entries.values()), self._record, self._clock)
        if self._mode == "thread":
            self._lag = None
            self._host = ThreadHost(scheduler)
        elif self._mode == "task" and _in_event_loop():
            self._lag = LagMonitor(self._max_lag) if self._max_lag is not None else None
            self._host = TaskHost(scheduler, self._lag)

    def _wake(self) -> None:
        host = self._host
        if host is not None and host.alive():
            host.scheduler.wake()
            return
        if self._mode == "thread":
            with self._lock:
                self._start_host()
        elif self._mode == "task":
            loop = self._loop
            if loop is not None and loop.is_running() and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._start_in_loop)
                except RuntimeError:
                    pass

    def _start_in_loop(self) -> None:
        with self._lock:
            self._start_host()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background runner and kill scripts in flight; :meth:`start` runs it again."""
        with self._lock:
            host, self._host = self._host, None
            self._mode = None
            self._stopped = True
        if host is not None:
            host.stop(timeout)
        for entry in list(self._entries.values()):
            entry.check.cancel()

    async def stop_async(self, timeout: float = 5.0) -> None:
        """:meth:`stop`, then wait for a runner on this loop to finish (ASGI lifespan)."""
        host = self._host
        self.stop(timeout)
        if isinstance(host, TaskHost) and host.loop is asyncio.get_running_loop():
            await host.wait()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop, and release what the checks hold (engines and clients built from URLs)."""
        self.stop(timeout)
        for entry in list(self._entries.values()):
            entry.check.close()

    async def run_round(self) -> None:
        """Run every check once now, on this loop, and record the results (tests, tools)."""
        entries = list(self._entries.values())
        results = await asyncio.gather(*(execute(e, self.clock) for e in entries))
        for entry, (outcome, duration) in zip(entries, results, strict=True):
            self._record(entry, outcome, duration)

    def use_clock(self, clock: Clock) -> None:
        """Take times from ``clock`` from now on (tests: :class:`ManualClock`)."""
        self.clock = clock
        self._started = clock.monotonic()

    def _clock(self) -> Clock:
        return self.clock

    def _record(self, entry: Entry, outcome: Outcome, duration: float) -> None:
        with self._lock:  # fork() waits: metrics and log locks are never forked held
            if self._entries.get(entry.name) is not entry:
                return  # removed or replaced while it ran
            snapshot, transition = advance(
                entry.snapshot, outcome, duration, self.clock.time(), entry.options
            )
            entry.snapshot = snapshot
            if self._duration_metric is not None:
                self._duration_metric.labels(entry.name).observe(duration)
            if transition is not None:
                self._set_status_metric(entry.name, snapshot)
                self._log_transition(entry, snapshot, transition)

    def _set_status_metric(self, name: str, snapshot: Snapshot) -> None:
        if self._status_metric is not None:
            self._status_metric.labels(name).set(1 if snapshot.status == "healthy" else 0)

    def _after_fork(self) -> None:
        """In a forked child (gunicorn --preload): one runner per process, restarted at once."""
        host, self._host = self._host, None
        self._answer_lock = threading.Lock()
        for entry in self._entries.values():
            entry.running = False
            entry.busy_since = None
            entry.due = None
            entry.check.after_fork()
        if isinstance(host, ThreadHost) and self._mode == "thread":
            self._start_host()
        elif isinstance(host, TaskHost):
            self._mode, self._loop = None, None  # that loop is the parent's; a request restarts

    # --- logging ------------------------------------------------------------------------------

    def _log(self, level: str, event: str, **fields: Any) -> None:
        if self._logger is None:
            return
        try:
            getattr(self._logger(), level)(event, **fields)
        except Exception:  # shut down, or a broken sink: health reporting goes on
            pass

    def _log_transition(self, entry: Entry, snapshot: Snapshot, change: Transition) -> None:
        healthy = change.current == "healthy"
        self._log(
            "info" if healthy else "warning",
            f"health check {change.current}",
            check=entry.name,
            status=change.current,
            previous=change.previous,
            cause=change.cause,
            critical=entry.options.critical,
            consecutive_successes=snapshot.consecutive_successes,
            consecutive_failures=snapshot.consecutive_failures,
        )

    # --- endpoints ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Whether every critical check is healthy (and has run at least once)."""
        return self._report.ready(self._entries, self._sources)

    def liveness(self, request: Mapping[str, str] | None = None) -> Response:
        """``/health``: 200 while the process serves (and the loop lag, when limited, is low)."""
        lag_limit = self._max_lag
        host, lag = self._host, self._lag
        current_lag = None
        if lag_limit is not None and lag is not None and host is not None and host.alive():
            current_lag = lag.current()
        uptime = self.clock.monotonic() - self._started
        return self._report.liveness(uptime, current_lag, lag_limit)

    def readiness(self, request: Mapping[str, str] | None = None) -> Response:
        """``/ready``: 200 when every critical check is healthy, else 503, with the details.

        ``request`` holds the request's headers (``authorization``) and its query string under
        ``:query``; ``?verbose`` adds each check's target, options and output, behind the
        bearer token of ``/metrics`` when one is set.
        """
        response, ready, failing = self._report.readiness(
            self._entries, self._sources, request or {}, self.verbose_token
        )
        if ready is not None and ready != self._answered:
            self._note_answer(ready, failing, response[0])
        return response

    def _note_answer(self, ready: bool, failing: list[str], status: int) -> None:
        with self._answer_lock:
            if ready == self._answered:
                return
            first = self._answered is None
            self._answered = ready
        if not ready:
            self._log("warning", "readiness probe failed", status=status, checks=failing)
        elif not first:
            self._log("info", "readiness probe passed", status=status)


def _options(check: Any) -> CheckOptions:
    timeout = check.timeout
    if check.check.timeout is not None:
        timeout = min(timeout, check.check.timeout)
    return CheckOptions(
        critical=check.critical, interval=check.interval, timeout=timeout,
        unhealthy_threshold=check.unhealthy_threshold, healthy_threshold=check.healthy_threshold,
    )  # fmt: skip


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
