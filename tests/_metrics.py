"""One parser for a ``/metrics`` body, shared by every suite that reads one.

``Scrape.parse(text)`` keeps every sample (name, labels, value, exemplar) in exposition order and
the type of every family; the methods answer the questions the suites ask of a scrape: the one
sample with an exact label set, the sum over a label subset, the label sets present, the
request counts by (method, route, status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class MetricSample:
    name: str
    labels: dict[str, str]
    value: float
    exemplar: Any = None


@dataclass
class Scrape:
    """The samples of one ``/metrics`` body."""

    samples: list[MetricSample] = field(default_factory=list)
    family_types: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, *, openmetrics: bool = False) -> Scrape:
        """Parse Prometheus text (or OpenMetrics, exemplars included)."""
        parser = openmetrics_families if openmetrics else text_string_to_metric_families
        scrape = cls()
        for family in parser(text):
            scrape.family_types[family.name] = family.type
            for s in family.samples:
                scrape.samples.append(
                    MetricSample(s.name, dict(s.labels), s.value, getattr(s, "exemplar", None))
                )
        return scrape

    def named(self, name: str) -> list[MetricSample]:
        return [s for s in self.samples if s.name == name]

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of every sample of ``name``."""
        return [(s.labels, s.value) for s in self.named(name)]

    def label_sets(self, name: str) -> list[dict[str, str]]:
        return [s.labels for s in self.named(name)]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample of ``name`` whose label set is exactly ``labels``."""
        found = [s for s in self.named(name) if s.labels == labels]
        assert len(found) == 1, (
            f"expected exactly one {name}{labels}, found {len(found)}; "
            f"label sets present: {self.label_sets(name)}"
        )
        return found[0].value

    def total(self, name: str) -> float:
        """The sum of every sample of ``name``."""
        return sum(s.value for s in self.named(name))

    def sum_of(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` that carry ``labels`` (and maybe others)."""
        return sum(s.value for s in self.named(name) if labels.items() <= s.labels.items())

    def counts(self, name: str = "http_requests_total") -> dict[tuple[str, str, str], float]:
        """(method, route, status) -> value, for a counter labelled by request."""
        return {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
                for s in self.named(name)}  # fmt: skip
