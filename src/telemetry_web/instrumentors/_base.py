"""What every instrumentor shares: wrapt patches undone from a list, spans that only start under
a parent, the operation-duration histogram, and its own errors caught and logged once.

An instrumentor holds the :class:`~telemetry_web.Telemetry` it records into. ``instrument()``
and ``uninstrument()`` are idempotent (a second call warns and does nothing). Every wrapper is a
``wrapt.FunctionWrapper`` recorded as a :class:`Patch` (target, attribute, what was there before),
so undoing is walking that list; a wrapper that something else has since wrapped over cannot be
taken out and is switched off instead (it then calls straight through).
"""

from __future__ import annotations

import logging
import threading
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import semconv as sc
from .._redaction import describe_exception, exception_attributes
from ..errors import MissingExtraError, TelemetryError
from ..metrics import Metric

if TYPE_CHECKING:
    from .._engine import Telemetry

__all__ = [
    "MIN_VERSIONS",
    "BaseInstrumentor",
    "Patch",
    "Switch",
    "end_span",
    "missing",
    "operation_duration",
    "require_version",
    "wrap",
]

# The oldest release of each instrumented library that is supported (checked at import).
MIN_VERSIONS: dict[str, tuple[int, ...]] = {"sqlalchemy": (1, 4), "redis": (5, 0)}

_log = logging.getLogger("telemetry_web.instrumentors")

# Tests set this to re-raise the instrumentors' own errors instead of logging them
# (STYLE.md section 9: in tests a bug must surface; in production it must never break a query).
STRICT = False

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


def require_version(token: str, version: str) -> None:
    """Raise when the installed ``token`` library is older than :data:`MIN_VERSIONS` says."""
    found = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    wanted = MIN_VERSIONS[token]
    if found < wanted:
        need = ".".join(map(str, wanted))
        raise TelemetryError(
            f"telemetry_web.instrumentors.{token} needs {token}>={need}, found {version}: "
            f"pip install -U 'telemetry-web[{token}]'"
        )


def missing(token: str) -> MissingExtraError:
    return MissingExtraError(f"telemetry_web.instrumentors.{token}", token, token)


class Switch:
    """Shared by a set of wrappers: off, they call straight through."""

    __slots__ = ("on",)

    def __init__(self) -> None:
        self.on = True


@dataclass
class Patch:
    """One wrapped attribute and how to put back what was there.

    An instance is held weakly (a patched client or engine is not kept alive by its patch).
    """

    target_ref: Callable[[], Any]
    attribute: str
    wrapper_ref: Callable[[], Any]  # the proxy wraps a bound method: held weakly too
    original: Any  # what the target's __dict__ held, or _INHERITED
    switch: Switch = field(default_factory=Switch)

    @property
    def target(self) -> Any:
        return self.target_ref()

    def undo(self) -> None:
        self.switch.on = False
        target = self.target_ref()
        wrapper = self.wrapper_ref()
        if target is None or wrapper is None or vars(target).get(self.attribute) is not wrapper:
            return  # gone, or wrapped over by someone else: left as it is, switched off
        if self.original is _INHERITED:
            delattr(target, self.attribute)
        else:
            setattr(target, self.attribute, self.original)


_INHERITED = object()


def wrap(target: Any, attribute: str, wrapper: Wrapper, switch: Switch | None = None) -> Patch:
    """Wrap ``target.attribute`` (a class or an instance) with ``wrapper``; the Patch undoes it."""
    own = vars(target).get(attribute, _INHERITED)
    if isinstance(target, type):
        for cls in target.__mro__:  # the descriptor itself, not a function bound to nothing
            if attribute in vars(cls):
                current = vars(cls)[attribute]
                break
        else:
            raise AttributeError(f"{target.__qualname__} has no attribute {attribute!r}")
    else:
        current = getattr(target, attribute)  # a bound method: the instance is kept
    switch = switch if switch is not None else Switch()

    def switched(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if switch.on:
            return wrapper(wrapped, instance, args, kwargs)
        return wrapped(*args, **kwargs)

    proxy = wrapt.FunctionWrapper(current, switched)
    setattr(target, attribute, proxy)
    target_ref = (lambda: target) if isinstance(target, type) else weakref.ref(target)
    return Patch(target_ref, attribute, weakref.ref(proxy), own, switch)


def operation_duration(telemetry: Telemetry) -> Metric:
    """``db_client_operation_duration_seconds{db_system,operation,status}`` of ``telemetry``
    (one metric, whichever instrumentor registers it first)."""
    return (
        telemetry.metrics.builder("histogram", sc.DB_CLIENT_OPERATION_DURATION)
        .with_description("Duration of database and cache client operations, in seconds.")
        .with_label_keys(sc.LABEL_DB_SYSTEM, sc.LABEL_DB_OPERATION, sc.LABEL_STATUS)
        .with_buckets(sc.DB_DURATION_BUCKETS)
        .register()
    )


# Instrumentors instrumenting everything, per (instrumentor class, Telemetry): a second one for
# the same Telemetry would record every operation twice.
_GLOBAL: weakref.WeakKeyDictionary[Telemetry, dict[type, BaseInstrumentor]] = (
    weakref.WeakKeyDictionary()
)
_GLOBAL_LOCK = threading.Lock()


class BaseInstrumentor:
    """Shared state and helpers; subclasses add ``instrument``/``uninstrument`` with typed
    keyword arguments and the wrappers themselves."""

    token: str = ""  # "sqlalchemy", "redis": module, extra, tox factor and tests folder
    scope: str = ""  # instrumentation scope of the tracer

    def __init__(self, *, telemetry: Telemetry, root_spans: bool = False) -> None:
        self.telemetry = telemetry
        self.root_spans = root_spans
        self.duration = operation_duration(telemetry)
        self._lock = threading.RLock()
        self._patches: list[Patch] = []
        self._global = False
        self._tracer_for: tuple[object, trace.Tracer] | None = None
        self._reported: set[str] = set()

    @property
    def is_instrumented(self) -> bool:
        """Whether this instrumentor instruments everything (``instrument()`` with no target)."""
        return self._global

    # --- instrument/uninstrument bookkeeping ----------------------------------------------------

    def _claim_global(self) -> bool:
        """Become the one instrumentor of this kind instrumenting everything for the Telemetry."""
        if self._global:
            warnings.warn(
                f"{type(self).__name__}.instrument() called twice; nothing more to do",
                RuntimeWarning,
                stacklevel=3,
            )
            return False
        with _GLOBAL_LOCK:
            claimed = _GLOBAL.setdefault(self.telemetry, {})
            other = claimed.get(type(self))
            if other is not None and other is not self:
                warnings.warn(
                    f"another {type(self).__name__} already instruments everything for "
                    f"{self.telemetry!r}; nothing more to do",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return False
            claimed[type(self)] = self
        self._global = True
        return True

    def _release_global(self) -> bool:
        if not self._global:
            return False
        with _GLOBAL_LOCK:
            claimed = _GLOBAL.get(self.telemetry, {})
            if claimed.get(type(self)) is self:
                del claimed[type(self)]
        self._global = False
        return True

    def _wrap(self, target: Any, attribute: str, wrapper: Wrapper) -> Patch:
        patch = wrap(target, attribute, wrapper)
        self._patches.append(patch)
        return patch

    def _unwrap_all(self, patches: list[Patch]) -> None:
        for patch in reversed(patches):
            patch.undo()
        patches.clear()

    # --- recording ------------------------------------------------------------------------------

    def tracer(self) -> trace.Tracer:
        """The Telemetry's tracer for this scope; a reconfigured Telemetry is followed."""
        provider = self.telemetry.tracer_provider
        cached = self._tracer_for
        if cached is not None and cached[0] is provider:
            return cached[1]
        tracer = self.telemetry.get_tracer(self.scope)
        self._tracer_for = (provider, tracer)
        return tracer

    def start_span(self, name: str, attributes: dict[str, Any]) -> Span | None:
        """A CLIENT span under the current span; None when there is none (unless root spans
        are enabled): an operation outside any request makes no trace of its own."""
        parent = otel_context.get_current()
        if not self.root_spans and not trace.get_current_span(parent).get_span_context().is_valid:
            return None
        try:
            return self.tracer().start_span(
                name, context=parent, kind=SpanKind.CLIENT, attributes=attributes
            )
        except Exception as exc:  # a broken span processor or sampler: keep the metrics
            self.internal_error("start_span", exc)
            return None

    def internal_error(self, where: str, exc: BaseException) -> None:
        """An error of the instrumentation itself: logged once per place, never raised."""
        if STRICT:
            raise exc
        if where in self._reported:
            return
        self._reported.add(where)
        try:
            _log.warning(
                "%s instrumentation failed in %s; the operation itself was not affected "
                "(logged once)",
                self.token,
                where,
                exc_info=exc,
            )
        except Exception:  # pragma: no cover - a broken logging setup is not ours to report
            pass


def end_span(span: Span, exception: BaseException | None, end_time: int | None = None) -> None:
    """End a client span, recording ``exception`` as its error."""
    if exception is not None and span.is_recording():
        span.set_attribute(sc.ATTR_ERROR_TYPE, sc.exception_type(type(exception)))
        # What record_exception adds, scrubbed: a database's error echoes statement literals.
        span.add_event("exception", exception_attributes(exception))
        span.set_status(Status(StatusCode.ERROR, describe_exception(exception)))
    span.end(end_time)
