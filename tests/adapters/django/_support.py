"""Helpers for the Django adapter tests: /metrics parsing and label sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

SERVICE = "django-test"
ENVIRONMENT = "test"
BASE_LABELS = {"service": SERVICE, "environment": ENVIRONMENT}
UNMATCHED = "<unmatched>"


@dataclass
class Scrape:
    """The samples of one ``/metrics`` body: name -> list of (labels, value)."""

    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Scrape:
        scrape = cls()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                scrape.samples.setdefault(sample.name, []).append(
                    (dict(sample.labels), sample.value)
                )
        return scrape

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample of ``name`` whose label set is exactly ``labels``."""
        found = [v for lbl, v in self.samples.get(name, []) if lbl == labels]
        assert len(found) == 1, (name, labels, self.samples.get(name))
        return found[0]

    def counts(self, name: str = "http_requests_total") -> dict[tuple[str, str, str], float]:
        """(method, route, status) -> value, for a counter labelled by request."""
        return {
            (lbl["method"], lbl["route"], lbl["status"]): v for lbl, v in self.samples.get(name, [])
        }


def labels(method: str, route: str, status: int | str, **base: str) -> dict[str, str]:
    """The full label set of one default-naming request series."""
    return {**(base or BASE_LABELS), "method": method, "route": route, "status": str(status)}


def request_lines(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e.get("logger") == "telemetry_web.request"]


def count(captured: Any, method: str, route: str, status: int | str) -> float | None:
    """``http_requests_total`` of one (method, route, status) in a CapturedTelemetry."""
    return captured.sample(  # type: ignore[no-any-return]
        "http_requests_total", method=method, route=route, status=str(status)
    )
