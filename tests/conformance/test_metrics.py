"""The RED metrics every adapter exposes for the shared requests: names, label keys, counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ._adapters import (
    CALL_IDS,
    CALLS,
    ENVIRONMENT,
    ORDER_BODY,
    SERVICE,
    Call,
    Recording,
)
from ._expectations import known_drift

REQUEST_KEYS = frozenset({"service", "environment", "method", "route", "status"})
# The label keys of each HTTP family (a histogram's `le` is not counted: it is per bucket).
HTTP_LABEL_KEYS = {
    "http_requests": REQUEST_KEYS,
    "http_request_duration_seconds": REQUEST_KEYS,
    "http_requests_in_progress": frozenset({"service", "environment", "method", "route"}),
    "http_request_size_bytes": REQUEST_KEYS,
    "http_response_size_bytes": REQUEST_KEYS,
}
HISTOGRAMS = (
    "http_request_duration_seconds",
    "http_request_size_bytes",
    "http_response_size_bytes",
)


@dataclass
class Scrape:
    """One ``metrics_text()``: family types, label key sets, and every sample."""

    types: dict[str, str] = field(default_factory=dict, repr=False)
    label_keys: dict[str, set[frozenset[str]]] = field(default_factory=dict, repr=False)
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, recording: Recording) -> Scrape:
        scrape = cls()
        for family in text_string_to_metric_families(recording.metrics_text):
            scrape.types[family.name] = family.type
            keys = scrape.label_keys.setdefault(family.name, set())
            for sample in family.samples:
                labels = dict(sample.labels)
                keys.add(frozenset(labels) - {"le"})
                scrape.samples.append((sample.name, labels, sample.value))
        return scrape

    def value(self, name: str, **labels: str) -> float | None:
        """The value of the one sample of ``name`` with exactly these labels (None: absent)."""
        found = [v for n, lbl, v in self.samples if n == name and lbl == labels]
        assert len(found) <= 1, (name, labels)
        return found[0] if found else None

    def series(self, name: str) -> list[dict[str, str]]:
        return [lbl for n, lbl, _ in self.samples if n == name]

    def buckets(self, family: str) -> set[str]:
        return {lbl["le"] for n, lbl, _ in self.samples if n == f"{family}_bucket"}


def test_metric_families_match_the_reference(recording: Recording, reference: Recording) -> None:
    """The adapter exposes exactly the reference's metric families, with the same types."""
    mine, theirs = Scrape.of(recording).types, Scrape.of(reference).types
    only_mine = {n: t for n, t in mine.items() if theirs.get(n) != t}
    only_theirs = {n: t for n, t in theirs.items() if mine.get(n) != t}
    assert mine == theirs, (
        f"only in {recording.name}: {only_mine}; only in {reference.name}: {only_theirs}"
    )


@pytest.mark.parametrize("family", sorted(HTTP_LABEL_KEYS))
def test_http_family_label_keys(recording: Recording, family: str) -> None:
    """Every sample of an HTTP family carries exactly the documented label keys."""
    assert Scrape.of(recording).label_keys.get(family) == {HTTP_LABEL_KEYS[family]}


@pytest.mark.parametrize("family", HISTOGRAMS)
def test_histogram_buckets_match_the_reference(
    recording: Recording, reference: Recording, family: str
) -> None:
    """The duration and size histograms have the reference's bucket boundaries."""
    assert Scrape.of(recording).buckets(family) == Scrape.of(reference).buckets(family)


def test_request_counts_per_method_and_status(recording: Recording, reference: Recording) -> None:
    """``http_requests_total`` counts one request per call, by method and status, as the
    reference does."""

    def counts(scrape: Scrape) -> Counter[tuple[str, str]]:
        counted: Counter[tuple[str, str]] = Counter()
        for name, labels, value in scrape.samples:
            if name == "http_requests_total":
                counted[labels["method"], labels["status"]] += int(value)
        return counted

    expected = Counter((call.method, str(call.status)) for call in CALLS)
    assert counts(Scrape.of(recording)) == expected
    assert counts(Scrape.of(reference)) == expected


def test_constant_labels(recording: Recording) -> None:
    """Every HTTP series carries the configured service and environment."""
    scrape = Scrape.of(recording)
    for name in ("http_requests_total", "http_requests_in_progress"):
        assert {(s["service"], s["environment"]) for s in scrape.series(name)} == {
            (SERVICE, ENVIRONMENT)
        }


@pytest.mark.parametrize("call", CALLS, ids=CALL_IDS)
def test_route_label(request: pytest.FixtureRequest, recording: Recording, call: Call) -> None:
    """Each request is one series labelled with the adapter's route template (``<unmatched>``
    for no route) in the counter, the histograms and the in-progress gauge."""
    known_drift(request, recording.name, call, "route-label")
    scrape = Scrape.of(recording)
    base = {"service": SERVICE, "environment": ENVIRONMENT, "method": call.method}
    route = recording.adapter.route(call)
    labels = {**base, "route": route, "status": str(call.status)}
    assert scrape.value("http_requests_total", **labels) == 1, (
        f"{recording.name}: no http_requests_total{labels}; series: "
        f"{[s for s in scrape.series('http_requests_total') if s['method'] == call.method]}"
    )
    for family in HISTOGRAMS:
        assert scrape.value(f"{family}_count", **labels) == 1, family
    assert scrape.value("http_requests_in_progress", **base, route=route) == 0


def test_request_sizes(recording: Recording) -> None:
    """The request size histogram counts the bytes of the POSTed body, and 0 for the rest."""
    sums: Counter[str] = Counter()
    for name, labels, value in Scrape.of(recording).samples:
        if name == "http_request_size_bytes_sum":
            sums[labels["method"]] += int(value)
    assert dict(sums) == {"GET": 0, "POST": len(ORDER_BODY), "DELETE": 0}
