"""User-facing metric builders over prometheus-client, with constant labels and cached children.

``telemetry.create_counter("jobs_total").with_label_keys("queue").register()`` returns a
:class:`Metric`. Registering the same definition again returns the same metric, so hot reloads
and re-imports never crash; a different definition under the same name is an error.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric as PromMetric

from ..errors import MetricRegistrationError

__all__ = ["Metric", "MetricBuilder", "MetricDefinition", "MetricSet"]

Kind = Literal["counter", "gauge", "histogram"]


class _Hooked:
    """A prometheus-client metric that runs ``before_collect`` first each time it is collected:
    values recorded off prometheus-client (the HTTP metrics' per-request slots) are folded into
    its children then, so every reader of the registry (``/metrics``, pushes, the store, tests)
    sees exact totals."""

    before_collect: Callable[[], None] | None = None

    def collect(self) -> Iterable[PromMetric]:
        hook = self.before_collect
        if hook is not None:
            hook()
        return super().collect()  # type: ignore[misc,no-any-return]


class _Counter(_Hooked, Counter):
    pass


class _Gauge(_Hooked, Gauge):
    pass


class _Histogram(_Hooked, Histogram):
    pass


_CLASSES: dict[str, Any] = {"counter": _Counter, "gauge": _Gauge, "histogram": _Histogram}


@dataclass(frozen=True)
class MetricDefinition:
    """What makes two registrations of one name the same metric."""

    kind: Kind
    name: str
    description: str
    label_keys: tuple[str, ...]
    constant_labels: tuple[tuple[str, str], ...]
    buckets: tuple[float, ...] | None
    multiprocess_mode: str | None = None

    def describe(self) -> str:
        labels = ",".join(k for k, _ in self.constant_labels) + (
            "," if self.constant_labels and self.label_keys else ""
        )
        labels += ",".join(self.label_keys)
        buckets = f" buckets={list(self.buckets)}" if self.buckets else ""
        return f"{self.kind} {self.name}{{{labels}}}{buckets}"

    def same_shape(self, other: MetricDefinition) -> bool:
        # The description may change between releases without making it another metric.
        return (self.kind, self.label_keys, self.constant_labels, self.buckets) == (
            other.kind,
            other.label_keys,
            other.constant_labels,
            other.buckets,
        )


class Metric:
    """A registered metric: ``labels(...)`` gives a cached child; without keys, use it directly."""

    __slots__ = ("_children", "_const_values", "_lock", "definition", "raw")

    def __init__(self, definition: MetricDefinition, raw: Any) -> None:
        self.definition = definition
        self.raw = raw
        self._const_values = tuple(v for _, v in definition.constant_labels)
        self._children: dict[tuple[str, ...], Any] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.definition.name

    def labels(self, *values: str, **by_key: str) -> Any:
        """The child for these label values (positional in key order, or by key)."""
        if by_key:
            try:
                values = tuple(by_key[k] for k in self.definition.label_keys)
            except KeyError as exc:
                raise ValueError(
                    f"metric '{self.name}' needs labels {list(self.definition.label_keys)}, "
                    f"got {sorted(by_key)}"
                ) from exc
        child = self._children.get(values)
        if child is None:
            child = self._child(values)
        return child

    def _child(self, values: tuple[str, ...]) -> Any:
        if len(values) != len(self.definition.label_keys):
            raise ValueError(
                f"metric '{self.name}' needs {len(self.definition.label_keys)} label values "
                f"{list(self.definition.label_keys)}, got {len(values)}"
            )
        with self._lock:
            child = self._children.get(values)
            if child is None:
                full = self._const_values + tuple(str(v) for v in values)
                child = self.raw.labels(*full) if full else self.raw
                self._children[values] = child
        return child

    # Shortcuts for metrics without label keys.
    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self.labels().dec(amount)

    def set(self, value: float) -> None:
        self.labels().set(value)

    def observe(self, value: float, exemplar: Mapping[str, str] | None = None) -> None:
        self.labels().observe(value, exemplar)


class MetricSet:
    """The metrics of one :class:`~telemetry_web.Telemetry`, in its own CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry, constant_labels: Mapping[str, str]) -> None:
        self.registry = registry
        self.constant_labels = tuple(constant_labels.items())
        self._metrics: dict[str, Metric] = {}
        self._lock = threading.Lock()

    def builder(self, kind: Kind, name: str) -> MetricBuilder:
        return MetricBuilder(self, kind, name)

    def register(self, definition: MetricDefinition) -> Metric:
        with self._lock:
            existing = self._metrics.get(definition.name)
            if existing is not None:
                if existing.definition.same_shape(definition):
                    return existing
                raise MetricRegistrationError(
                    f"duplicate metric name '{definition.name}': already registered as "
                    f"{existing.definition.describe()}, now asked for {definition.describe()}"
                )
            metric = Metric(definition, self._create(definition))
            self._metrics[definition.name] = metric
            return metric

    def _create(self, d: MetricDefinition) -> Any:
        keys = [k for k, _ in d.constant_labels] + list(d.label_keys)
        kwargs: dict[str, Any] = {"registry": self.registry}
        if d.buckets is not None:
            kwargs["buckets"] = d.buckets
        if d.kind == "gauge":
            # Several workers: one series per live worker unless told how to combine them.
            kwargs["multiprocess_mode"] = d.multiprocess_mode or "liveall"
        # Counter names are given without `_total`: prometheus-client appends it.
        name = (
            d.name[: -len("_total")]
            if d.kind == "counter" and d.name.endswith("_total")
            else d.name
        )
        try:
            return _CLASSES[d.kind](name, d.description or d.name, keys, **kwargs)
        except ValueError as exc:  # a name that another library already put in the registry
            raise MetricRegistrationError(f"cannot register {d.describe()}: {exc}") from None

    def get(self, name: str) -> Metric | None:
        return self._metrics.get(name)

    def all(self) -> list[Metric]:
        with self._lock:
            return sorted(self._metrics.values(), key=lambda m: m.name)


class MetricBuilder:
    """Fluent definition of one metric; ``register()`` returns the :class:`Metric`."""

    def __init__(self, metrics: MetricSet, kind: Kind, name: str) -> None:
        self._metrics = metrics
        self._kind = kind
        self._name = name
        self._description = ""
        self._label_keys: tuple[str, ...] = ()
        self._labels: dict[str, str] = dict(metrics.constant_labels)
        self._buckets: tuple[float, ...] | None = None
        self._multiprocess_mode: str | None = None

    def with_description(self, description: str) -> MetricBuilder:
        self._description = description
        return self

    def with_labels(self, labels: Mapping[str, str]) -> MetricBuilder:
        """Constant labels, on every sample of this metric."""
        self._labels.update({k: str(v) for k, v in labels.items()})
        return self

    def with_label_keys(self, *keys: str | Iterable[str]) -> MetricBuilder:
        """Label keys whose values are given per observation with ``labels(...)``."""
        flat: list[str] = []
        for key in keys:
            flat.extend([key] if isinstance(key, str) else key)
        self._label_keys = tuple(flat)
        return self

    def with_buckets(self, buckets: Sequence[float]) -> MetricBuilder:
        if self._kind != "histogram":
            raise MetricRegistrationError(
                f"buckets apply to histograms, not {self._kind} '{self._name}'"
            )
        self._buckets = tuple(float(b) for b in buckets)
        return self

    def with_multiprocess_mode(self, mode: str) -> MetricBuilder:
        """How gauges from several worker processes combine (prometheus-client's modes)."""
        self._multiprocess_mode = mode
        return self

    def register(self) -> Metric:
        clash = set(self._labels) & set(self._label_keys)
        if clash:
            raise MetricRegistrationError(
                f"metric '{self._name}': label keys {sorted(clash)} are already constant labels"
            )
        return self._metrics.register(
            MetricDefinition(
                kind=self._kind,
                name=self._name,
                description=self._description,
                label_keys=self._label_keys,
                constant_labels=tuple(self._labels.items()),
                buckets=self._buckets,
                multiprocess_mode=self._multiprocess_mode,
            )
        )
