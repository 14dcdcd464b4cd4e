"""Application metrics built through Telemetry.create_counter/create_gauge/create_histogram."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from telemetry_web import Telemetry
from telemetry_web.errors import MetricRegistrationError

QUIET: dict[str, Any] = {"logging": {"sinks": {"console": False}}}
CONST = {"service": "svc", "environment": "development"}
DEFAULT_LE = [
    "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75",
    "1.0", "2.5", "5.0", "7.5", "10.0", "+Inf",
]  # fmt: skip
# The body-size histograms are opt-in (metrics.size_histograms) and so not built in.
BUILT_IN = [
    "http_request_duration_seconds",
    "http_requests_in_progress",
    "http_requests_total",
    "telemetry_alert_notifications_dropped_total",
    "telemetry_log_events_dropped_total",
    "telemetry_metrics_dropped_total",
    "telemetry_spans_dropped_total",
]

Sample = tuple[str, dict[str, str], float]


@pytest.fixture
def make_telemetry() -> Iterator[Callable[..., Telemetry]]:
    """Build Telemetry objects that are shut down after the test."""
    created: list[Telemetry] = []

    def make(**kwargs: Any) -> Telemetry:
        config = {**QUIET, **kwargs.pop("config", {})}
        telemetry = Telemetry(use_env=False, config=config, **kwargs)
        created.append(telemetry)
        return telemetry

    yield make
    for telemetry in created:
        telemetry.shutdown()


@pytest.fixture
def tel(make_telemetry: Callable[..., Telemetry]) -> Telemetry:
    """A Telemetry for service 'svc' with the console sink off."""
    return make_telemetry(service="svc")


def scrape(telemetry: Telemetry) -> dict[str, Any]:
    """The metric families of the registry's Prometheus text output, by family name."""
    text = prometheus_client.generate_latest(telemetry.registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(telemetry: Telemetry, family: str) -> list[Sample]:
    """(sample name, labels, value) of one family, in exposition order."""
    return [(s.name, s.labels, s.value) for s in scrape(telemetry)[family].samples]


# --- counters, gauges, histograms ------------------------------------------------------------


def test_counter_with_label_keys(tel: Telemetry) -> None:
    """A counter exposes one sample per label value, with the constant labels on each."""
    jobs = tel.create_counter("jobs_total").with_description("Jobs done.").with_label_keys("queue")
    counter = jobs.register()
    counter.labels("email").inc()
    counter.labels(queue="sms").inc(2)
    family = scrape(tel)["jobs"]
    assert (family.type, family.documentation) == ("counter", "Jobs done.")
    assert samples(tel, "jobs") == [
        ("jobs_total", {**CONST, "queue": "email"}, 1.0),
        ("jobs_total", {**CONST, "queue": "sms"}, 2.0),
    ]


def test_counter_name_without_total_suffix(tel: Telemetry) -> None:
    """A counter named without '_total' is found by that name and exposed with '_total'."""
    counter = tel.create_counter("retries").register()
    counter.inc(3)
    assert tel.get_metric("retries") is counter
    assert samples(tel, "retries") == [("retries_total", CONST, 3.0)]


def test_gauge_without_label_keys(tel: Telemetry) -> None:
    """A gauge without label keys is set, increased and decreased directly."""
    gauge = tel.create_gauge("queue_depth").with_description("Jobs waiting.").register()
    gauge.set(10)
    gauge.inc(5)
    gauge.dec(2)
    family = scrape(tel)["queue_depth"]
    assert (family.type, family.documentation) == ("gauge", "Jobs waiting.")
    assert samples(tel, "queue_depth") == [("queue_depth", CONST, 13.0)]


def test_description_defaults_to_name(tel: Telemetry) -> None:
    """A metric registered without a description uses its name as HELP text."""
    tel.create_gauge("temperature").register().set(1)
    assert scrape(tel)["temperature"].documentation == "temperature"


def test_histogram_default_buckets(tel: Telemetry) -> None:
    """A histogram without buckets uses prometheus-client's default boundaries."""
    tel.create_histogram("work_seconds").register().observe(0.3)
    buckets = [s for s in samples(tel, "work_seconds") if s[0] == "work_seconds_bucket"]
    assert [labels["le"] for _, labels, _ in buckets] == DEFAULT_LE


def test_histogram_custom_buckets(tel: Telemetry) -> None:
    """Custom buckets appear as 'le' values with cumulative counts, then count and sum."""
    histogram = (
        tel.create_histogram("payload_bytes")
        .with_description("Payload sizes.")
        .with_label_keys("kind")
        .with_buckets([100, 1000, 10_000])
        .register()
    )
    for size in (50, 500, 5000, 50_000):
        histogram.labels("upload").observe(size)
    labels = {**CONST, "kind": "upload"}
    assert scrape(tel)["payload_bytes"].type == "histogram"
    assert samples(tel, "payload_bytes") == [
        ("payload_bytes_bucket", {**labels, "le": "100.0"}, 1.0),
        ("payload_bytes_bucket", {**labels, "le": "1000.0"}, 2.0),
        ("payload_bytes_bucket", {**labels, "le": "10000.0"}, 3.0),
        ("payload_bytes_bucket", {**labels, "le": "+Inf"}, 4.0),
        ("payload_bytes_count", labels, 4.0),
        ("payload_bytes_sum", labels, 55_550.0),
    ]


# --- constant labels -------------------------------------------------------------------------


def test_with_labels_adds_constant_labels(tel: Telemetry) -> None:
    """with_labels puts constant labels on every sample, next to the per-call label keys."""
    counter = (
        tel.create_counter("cache_hits_total")
        .with_labels({"cache": "redis", "shard": 3})  # type: ignore[dict-item]  # not a str, on purpose
        .with_label_keys("op")
        .register()
    )
    counter.labels("get").inc()
    assert samples(tel, "cache_hits") == [
        ("cache_hits_total", {**CONST, "cache": "redis", "shard": "3", "op": "get"}, 1.0)
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"config": {"labels": {"team": "core"}, "environment": "prod"}}, id="config"),
        pytest.param({"labels": {"team": "core"}, "environment": "prod"}, id="keywords"),
    ],
)
def test_configured_labels_are_on_every_metric(
    make_telemetry: Callable[..., Telemetry], kwargs: dict[str, Any]
) -> None:
    """Configured labels and the environment join service on every application metric."""
    telemetry = make_telemetry(service="svc", **kwargs)
    telemetry.create_gauge("workers").register().set(4)
    assert samples(telemetry, "workers") == [
        ("workers", {"service": "svc", "environment": "prod", "team": "core"}, 4.0)
    ]


def test_label_key_that_is_a_constant_label_is_rejected(tel: Telemetry) -> None:
    """A per-call label key that is already a constant label is a registration error."""
    builder = tel.create_counter("events_total").with_label_keys("service", "kind")
    with pytest.raises(MetricRegistrationError) as info:
        builder.register()
    assert (
        str(info.value)
        == "metric 'events_total': label keys ['service'] are already constant labels"
    )


def test_buckets_on_a_counter_are_rejected(tel: Telemetry) -> None:
    """Buckets apply to histograms only."""
    with pytest.raises(MetricRegistrationError) as info:
        tel.create_counter("jobs_total").with_buckets([1, 2])
    assert str(info.value) == "buckets apply to histograms, not counter 'jobs_total'"


# --- registering twice -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "define",
    [
        pytest.param(
            lambda t: t.create_counter("x").with_description("X.").with_label_keys("a").register(),
            id="counter",
        ),
        pytest.param(lambda t: t.create_gauge("x").with_labels({"k": "v"}).register(), id="gauge"),
        pytest.param(
            lambda t: t.create_histogram("x").with_buckets([1, 2]).register(), id="histogram"
        ),
    ],
)
def test_same_definition_twice_returns_the_same_metric(
    tel: Telemetry, define: Callable[[Telemetry], Any]
) -> None:
    """Registering the same definition again returns the metric already registered."""
    first = define(tel)
    assert define(tel) is first
    assert [m.name for m in tel.list_metrics()].count("x") == 1


def test_new_description_returns_the_same_metric(tel: Telemetry) -> None:
    """Only the description differing does not make another metric."""
    first = tel.create_counter("x").with_description("Old.").register()
    second = tel.create_counter("x").with_description("New.").register()
    assert second is first
    assert scrape(tel)["x"].documentation == "Old."


@pytest.mark.parametrize(
    ("first", "second", "message"),
    [
        pytest.param(
            lambda t: t.create_counter("x").with_label_keys("queue"),
            lambda t: t.create_gauge("x").with_label_keys("queue"),
            "duplicate metric name 'x': already registered as counter "
            "x{service,environment,queue}, now asked for gauge x{service,environment,queue}",
            id="type",
        ),
        pytest.param(
            lambda t: t.create_counter("x").with_label_keys("queue"),
            lambda t: t.create_counter("x").with_label_keys("queue", "priority"),
            "duplicate metric name 'x': already registered as counter "
            "x{service,environment,queue}, now asked for counter "
            "x{service,environment,queue,priority}",
            id="label-keys",
        ),
        pytest.param(
            lambda t: t.create_gauge("x"),
            lambda t: t.create_gauge("x").with_labels({"zone": "a"}),
            "duplicate metric name 'x': already registered as gauge x{service,environment}, "
            "now asked for gauge x{service,environment,zone}",
            id="constant-labels",
        ),
        pytest.param(
            lambda t: t.create_histogram("x").with_buckets([0.1, 1]),
            lambda t: t.create_histogram("x").with_buckets([1, 2]),
            "duplicate metric name 'x': already registered as histogram "
            "x{service,environment} buckets=[0.1, 1.0], now asked for histogram "
            "x{service,environment} buckets=[1.0, 2.0]",
            id="buckets",
        ),
        pytest.param(
            lambda t: t.create_histogram("x"),
            lambda t: t.create_histogram("x").with_buckets([1, 2]),
            "duplicate metric name 'x': already registered as histogram "
            "x{service,environment}, now asked for histogram "
            "x{service,environment} buckets=[1.0, 2.0]",
            id="default-vs-custom-buckets",
        ),
    ],
)
def test_clashing_definition_names_both(
    tel: Telemetry,
    first: Callable[[Telemetry], Any],
    second: Callable[[Telemetry], Any],
    message: str,
) -> None:
    """Another definition under a registered name raises, describing both definitions."""
    existing = first(tel).register()
    with pytest.raises(MetricRegistrationError) as info:
        second(tel).register()
    assert str(info.value) == message
    assert tel.get_metric("x") is existing


def test_clash_with_a_built_in_metric(tel: Telemetry) -> None:
    """A name telemetry-web already uses for HTTP metrics cannot be redefined."""
    with pytest.raises(MetricRegistrationError) as info:
        tel.create_counter("http_requests_total").register()
    assert str(info.value) == (
        "duplicate metric name 'http_requests_total': already registered as counter "
        "http_requests_total{service,environment,method,route,status}, now asked for counter "
        "http_requests_total{service,environment}"
    )


def test_registration_error_is_a_value_error(tel: Telemetry) -> None:
    """MetricRegistrationError can be caught as ValueError."""
    tel.create_counter("x").register()
    with pytest.raises(ValueError, match=r"^duplicate metric name 'x'"):
        tel.create_gauge("x").register()


# --- lookup ----------------------------------------------------------------------------------


def test_get_metric(tel: Telemetry) -> None:
    """get_metric returns the registered metric by name, None for an unknown name."""
    counter = tel.create_counter("jobs_total").register()
    assert tel.get_metric("jobs_total") is counter
    assert tel.get_metric("jobs") is None
    assert tel.get_metric("missing") is None


def test_list_metrics_sorted_with_built_ins(tel: Telemetry) -> None:
    """list_metrics gives every registered metric, built-in ones included, sorted by name."""
    tel.create_gauge("zz_last").register()
    tel.create_counter("aa_first_total").register()
    assert [m.name for m in tel.list_metrics()] == sorted([*BUILT_IN, "zz_last", "aa_first_total"])


def test_metric_exposes_its_definition(tel: Telemetry) -> None:
    """A registered metric carries its kind, name, label keys, constant labels and buckets."""
    histogram = (
        tel.create_histogram("lat")
        .with_description("Latency.")
        .with_label_keys(["route", "method"])
        .with_buckets((0.5, 1))
        .register()
    )
    d = histogram.definition
    assert (d.kind, d.name, d.description, d.label_keys, d.constant_labels, d.buckets) == (
        "histogram",
        "lat",
        "Latency.",
        ("route", "method"),
        (("service", "svc"), ("environment", "development")),
        (0.5, 1.0),
    )
    assert d.describe() == "histogram lat{service,environment,route,method} buckets=[0.5, 1.0]"


# --- label values ----------------------------------------------------------------------------


def test_labels_by_key_and_by_position_give_the_same_child(tel: Telemetry) -> None:
    """labels('a', 'b') and labels(k1='a', k2='b') are the same cached child."""
    counter = tel.create_counter("x").with_label_keys("route", "method").register()
    assert counter.labels("/a", "GET") is counter.labels(method="GET", route="/a")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda m: m.labels(),
            "metric 'jobs_total' needs 2 label values ['queue', 'priority'], got 0",
            id="none",
        ),
        pytest.param(
            lambda m: m.labels("email"),
            "metric 'jobs_total' needs 2 label values ['queue', 'priority'], got 1",
            id="too-few",
        ),
        pytest.param(
            lambda m: m.labels("email", "high", "extra"),
            "metric 'jobs_total' needs 2 label values ['queue', 'priority'], got 3",
            id="too-many",
        ),
        pytest.param(
            lambda m: m.labels(queue="email"),
            "metric 'jobs_total' needs labels ['queue', 'priority'], got ['queue']",
            id="missing-key",
        ),
        pytest.param(
            lambda m: m.labels(queue="email", prio="high"),
            "metric 'jobs_total' needs labels ['queue', 'priority'], got ['prio', 'queue']",
            id="wrong-key",
        ),
        pytest.param(
            lambda m: m.inc(),
            "metric 'jobs_total' needs 2 label values ['queue', 'priority'], got 0",
            id="shortcut-without-labels",
        ),
    ],
)
def test_wrong_label_values_raise_value_error(
    tel: Telemetry, call: Callable[[Any], Any], message: str
) -> None:
    """A wrong number or wrong names of label values raise ValueError naming the label keys."""
    counter = tel.create_counter("jobs_total").with_label_keys("queue", "priority").register()
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        call(counter)
    assert samples(tel, "jobs") == []


def test_label_values_are_strings(tel: Telemetry) -> None:
    """Label values that are not strings are exposed as their string form."""
    counter = tel.create_counter("x").with_label_keys("status").register()
    counter.labels(404).inc()  # type: ignore[arg-type]  # not a str, on purpose
    assert samples(tel, "x") == [("x_total", {**CONST, "status": "404"}, 1.0)]


def test_metrics_of_two_telemetry_objects_are_separate(
    make_telemetry: Callable[..., Telemetry],
) -> None:
    """Each Telemetry has its own registry, so the same name in two of them never clashes."""
    one = make_telemetry(service="one")
    two = make_telemetry(service="two")
    one.create_counter("x").register().inc()
    two.create_gauge("x").register().set(7)
    assert samples(one, "x") == [("x_total", {"service": "one", "environment": "development"}, 1.0)]
    assert samples(two, "x") == [("x", {"service": "two", "environment": "development"}, 7.0)]
