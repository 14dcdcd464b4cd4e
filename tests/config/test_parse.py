"""Validation of configuration data: key paths, expectations, units, tagged sections, checks."""

from __future__ import annotations

from typing import Any

import pytest

from telemetry_web import Telemetry
from telemetry_web.config import SamplingSettings, parse_section, parse_settings
from telemetry_web.config._model import HealthCheckTargetSettings, LogProcessorSettings
from telemetry_web.errors import ConfigError

DURATION = "a duration such as '500ms', '10s', '5m', '15d' or seconds"
SIZE = "a size such as '512KB', '100MB', '1GiB' or bytes"
LEVELS = "'debug', 'info', 'warning', 'error', 'critical'"
SAMPLERS = "'always_on', 'always_off', 'ratio', 'rate_limiting', 'parent_based'"
LABEL_NAMES = (
    "label names made of letters, digits and '_', not starting with '__' and "
    "not one of 'environment', 'le', 'method', 'quantile', 'route', 'service', 'status'"
)
USED_BY_RATE = "(used by 'ratio', 'rate_limiting')"
QUIET = {"logging": {"sinks": {"console": False}}}


def problems_of(data: Any) -> list[str]:
    """The problems ConfigError lists for ``data``."""
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    return info.value.problems


def assert_single_problem(data: Any, problem: str) -> None:
    """``data`` fails with exactly ``problem``, and the message is that one line."""
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    assert info.value.problems == [problem]
    assert str(info.value) == f"invalid telemetry configuration: {problem}"


# --- unknown keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(
            {"tracing": {"samplng": {}}},
            "tracing.samplng: unknown key (did you mean 'sampling'?)",
            id="nested-typo",
        ),
        pytest.param(
            {"servce": "api"}, "servce: unknown key (did you mean 'service'?)", id="top-level-typo"
        ),
        pytest.param(
            {"Service": "api"}, "Service: unknown key (did you mean 'service'?)", id="wrong-case"
        ),
        pytest.param({"tracing": {"xyz": 1}}, "tracing.xyz: unknown key", id="no-close-match"),
        pytest.param(
            {"logging": {"sinks": {"consol": {}}}},
            "logging.sinks.consol: unknown key (did you mean 'console'?)",
            id="deep-typo",
        ),
        pytest.param(
            {"metrics": {"rules": [{"name": "r", "query": "q", "intervl": "5m"}]}},
            "metrics.rules[0].intervl: unknown key (did you mean 'interval'?)",
            id="in-list-item",
        ),
        pytest.param(
            {"telemetry": {"service": "api"}, "service": "x"},
            "telemetry: unknown key",
            id="wrapper-next-to-other-keys",
        ),
    ],
)
def test_unknown_key_is_named_with_a_suggestion(data: dict[str, Any], problem: str) -> None:
    """An unknown key is reported at its full path, with the closest known key when there is one."""
    assert_single_problem(data, problem)


# --- wrong types and values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(
            {"tracing": {"sampling": {"type": "ratio", "rate": "fast"}}},
            "tracing.sampling.rate: expected a positive number, got 'fast'",
            id="rate-not-a-number",
        ),
        pytest.param(
            {"health": {"checks": [{"name": "db", "check": {"tcp": {"host": "db", "port": "x"}}}]}},
            "health.checks[0].check.port: expected a port number from 1 to 65535, got 'x'",
            id="port-in-list-item",
        ),
        pytest.param(
            {
                "health": {
                    "checks": [
                        {"name": "a", "check": {"tcp": {"host": "a", "port": 1}}},
                        {"name": "b", "check": {"tcp": {"host": "b", "port": 70000}}},
                    ]
                }
            },
            "health.checks[1].check.port: expected a port number from 1 to 65535, got 70000",
            id="port-out-of-range-second-item",
        ),
        pytest.param(
            {"metrics": {"collectors": {"prometheus": {"port": 0}}}},
            "metrics.collectors.prometheus.port: expected a port number from 1 to 65535, got 0",
            id="port-zero",
        ),
        pytest.param(
            {"service": ["x"]}, "service: expected a string, got ['x']", id="string-got-list"
        ),
        pytest.param({"service": None}, "service: expected a string, got None", id="string-none"),
        pytest.param(
            {"metrics": {"enabled": "maybe"}},
            "metrics.enabled: expected true or false, got 'maybe'",
            id="bool",
        ),
        pytest.param(
            {"tracing": 5}, "tracing: expected a mapping, got 5", id="section-not-mapping"
        ),
        pytest.param(["x"], "<root>: expected a mapping, got ['x']", id="root-not-mapping"),
        pytest.param(
            {"health": {"checks": "x"}}, "health.checks: expected a list, got 'x'", id="not-a-list"
        ),
        pytest.param(
            {"health": {"checks": ["x"]}},
            "health.checks[0]: expected a mapping, got 'x'",
            id="list-item-not-mapping",
        ),
        pytest.param(
            {"labels": 5}, "labels: expected a mapping of names to values, got 5", id="dict-got-int"
        ),
        pytest.param(
            {"labels": {5: "x"}}, "labels: expected string keys, got 5", id="dict-int-key"
        ),
        pytest.param(
            {"logging": {"queue_size": 0}},
            "logging.queue_size: expected a positive number, got 0",
            id="positive-zero",
        ),
        pytest.param(
            {"logging": {"queue_size": "10"}},
            "logging.queue_size: expected a positive number, got '10'",
            id="positive-got-string",
        ),
        pytest.param(
            {"tracing": {"batch": {"max_queue_size": 1.5}}},
            "tracing.batch.max_queue_size: expected a positive number, got 1.5",
            id="whole-number-got-float",
        ),
        pytest.param(
            {"metrics": {"duration_buckets": [0.1, "x"]}},
            "metrics.duration_buckets[1]: expected a number, got 'x'",
            id="list-item-number",
        ),
        pytest.param(
            {"metrics": {"collectors": {"prometheus": {"path": "metrics"}}}},
            "metrics.collectors.prometheus.path: expected a URL path starting with '/', "
            "got 'metrics'",
            id="url-path-no-slash",
        ),
        pytest.param(
            {"health": {"readiness_endpoint": "/re ady"}},
            "health.readiness_endpoint: expected a URL path starting with '/', got '/re ady'",
            id="url-path-space",
        ),
        pytest.param(
            {"tracing": {"exporters": {"jaeger": {"agent": {"max_packet_size": -1}}}}},
            "tracing.exporters.jaeger.agent.max_packet_size: expected a positive number, got -1",
            id="deep-positive",
        ),
        pytest.param(
            {"service": ["x" * 100]},
            "service: expected a string, got ['" + "x" * 75 + "...",
            id="long-value-shortened",
        ),
    ],
)
def test_wrong_value_names_path_expectation_and_value(data: Any, problem: str) -> None:
    """A value of the wrong type or range is reported with its path, expectation and value."""
    assert_single_problem(data, problem)


# --- required keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problems"),
    [
        pytest.param(
            {"metrics": {"rules": [{}]}},
            ["metrics.rules[0].name: required", "metrics.rules[0].query: required"],
            id="rule-name-and-query",
        ),
        pytest.param(
            {"metrics": {"exporters": [{"type": "prometheus"}]}},
            ["metrics.exporters[0].endpoint: required for type 'prometheus'"],
            id="remote-write-endpoint",
        ),
        pytest.param(
            {"metrics": {"exporters": ["datadog"]}},
            ["metrics.exporters[0].api_key: required for type 'datadog'"],
            id="tagged-entry-by-its-type-alone",
        ),
        pytest.param(
            {"metrics": {"exporters": [{"prometheus": None}]}},
            ["metrics.exporters[0].endpoint: required for type 'prometheus'"],
            id="section-switched-on-without-required-key",
        ),
        pytest.param(
            {"logging": {"sinks": {"file": {}}}}, ["logging.sinks.file.path: required"], id="file"
        ),
        pytest.param(
            {"logging": {"processors": [{}]}},
            ["logging.processors[0].type: required"],
            id="processor-type",
        ),
        pytest.param(
            {"health": {"checks": [{"check": {"script": {"command": "true"}}}]}},
            ["health.checks[0].name: required"],
            id="check-name",
        ),
        pytest.param(
            {"health": {"checks": [{"name": "db"}]}},
            ["health.checks[0].check: required"],
            id="check-target",
        ),
        pytest.param(
            {"health": {"checks": [{"name": "db", "check": {"tcp": {"host": "db"}}}]}},
            ["health.checks[0].check.port: required for type 'tcp'"],
            id="tcp-port",
        ),
        pytest.param(
            {"health": {"checks": [{"name": "db", "check": "tcp"}]}},
            [
                "health.checks[0].check.host: required for type 'tcp'",
                "health.checks[0].check.port: required for type 'tcp'",
            ],
            id="tcp-host-and-port",
        ),
        pytest.param(
            {"health": {"checks": [{"name": "api", "check": {"type": "http"}}]}},
            ["health.checks[0].check.url: required for type 'http'"],
            id="http-url",
        ),
        pytest.param(
            {"health": {"checks": [{"name": "s", "check": "script"}]}},
            ["health.checks[0].check.command: required for type 'script'"],
            id="script-command",
        ),
        pytest.param(
            {"logging": {"processors": [{"type": "filter"}]}},
            ["logging.processors[0].field: required for type 'filter'"],
            id="filter-field",
        ),
    ],
)
def test_missing_required_key_is_named(data: dict[str, Any], problems: list[str]) -> None:
    """A key that has no default, or that the section's type needs, is reported as required."""
    assert problems_of(data) == problems


# --- choices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(
            {"logging": {"level": "verbose"}},
            f"logging.level: expected one of {LEVELS}, got 'verbose'",
            id="level",
        ),
        pytest.param(
            {"logging": {"level": "warn"}},
            f"logging.level: expected one of {LEVELS} (did you mean 'warning'?), got 'warn'",
            id="level-did-you-mean",
        ),
        pytest.param(
            {"logging": {"levels": {"sqlalchemy.engine": "loud"}}},
            f"logging.levels.sqlalchemy.engine: expected one of {LEVELS}, got 'loud'",
            id="per-logger-level",
        ),
        pytest.param(
            {"logging": {"format": "yaml"}},
            "logging.format: expected one of 'json', 'console', got 'yaml'",
            id="format",
        ),
        pytest.param(
            {"logging": {"level": 3}},
            f"logging.level: expected one of {LEVELS}, got 3",
            id="not-a-string",
        ),
        pytest.param(
            {"tracing": {"exporters": {"otlp": {"protocol": "http"}}}},
            "tracing.exporters.otlp.protocol: expected one of 'http/protobuf', 'grpc', got 'http'",
            id="otlp-protocol",
        ),
        pytest.param(
            {"tracing": {"propagation": ["w3c", "jaegr"]}},
            "tracing.propagation[1]: expected one of 'w3c', 'b3', 'b3multi', 'baggage', "
            "got 'jaegr'",
            id="propagator-in-list",
        ),
        pytest.param(
            {"tracing": {"sampling": "ratoi"}},
            f"tracing.sampling.type: expected one of {SAMPLERS} (did you mean 'ratio'?), "
            "got 'ratoi'",
            id="sampler-shorthand-typo",
        ),
        pytest.param(
            {"tracing": {"sampling": 5}},
            f"tracing.sampling: expected one of {SAMPLERS}, got 5",
            id="sampler-not-string-or-mapping",
        ),
        pytest.param(
            {"health": {"checks": [{"name": "a", "check": 5}]}},
            "health.checks[0].check: expected one of 'tcp', 'http', 'script', 'disk', "
            "'sqlalchemy', 'redis', 'function', got 5",
            id="check-target-not-string-or-mapping",
        ),
    ],
)
def test_value_outside_choices_lists_the_choices(data: dict[str, Any], problem: str) -> None:
    """A value that is not one of a key's choices is reported with every accepted choice."""
    assert_single_problem(data, problem)


@pytest.mark.parametrize(
    ("data", "attribute", "expected"),
    [
        pytest.param({"logging": {"level": "DEBUG"}}, ("logging", "level"), "debug", id="level"),
        pytest.param(
            {"tracing": {"exporters": {"otlp": {"protocol": "GRPC"}}}},
            ("tracing", "exporters", "otlp", "protocol"),
            "grpc",
            id="protocol",
        ),
        pytest.param({"metrics": {"naming": "Otel"}}, ("metrics", "naming"), "otel", id="naming"),
        pytest.param({"metrics": {"enabled": "no"}}, ("metrics", "enabled"), False, id="bool-no"),
        pytest.param({"metrics": {"enabled": "ON"}}, ("metrics", "enabled"), True, id="bool-on"),
        pytest.param({"service": 123}, ("service",), "123", id="number-as-string"),
        pytest.param(
            {"tracing": {"propagation": "baggage, w3c"}},
            ("tracing", "propagation"),
            ("baggage", "w3c"),
            id="comma-separated-list",
        ),
        pytest.param(
            {"labels": "team=core, tier=web"},
            ("labels",),
            {"team": "core", "tier": "web"},
            id="key-value-pairs",
        ),
    ],
)
def test_lenient_spellings_are_normalised(
    data: dict[str, Any], attribute: tuple[str, ...], expected: object
) -> None:
    """Choices ignore case, booleans accept yes/no/on/off, lists and mappings accept strings."""
    value: Any = parse_settings(data)
    for name in attribute:
        value = getattr(value, name)
    assert value == expected


# --- durations and sizes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("10s", 10.0),
        ("5m", 300.0),
        ("15d", 1_296_000.0),
        ("500ms", 0.5),
        ("2h", 7200.0),
        ("1w", 604_800.0),
        ("1.5s", 1.5),
        (" 10s ", 10.0),
        ("30", 30.0),
        (30, 30.0),
        (0.25, 0.25),
        (0, 0.0),
    ],
)
def test_duration_becomes_seconds(raw: object, seconds: float) -> None:
    """Durations are given with a unit (ms, s, m, h, d, w) or as seconds and stored as seconds."""
    settings = parse_settings({"tracing": {"batch": {"schedule_delay": raw}}})
    assert settings.tracing.batch.schedule_delay == seconds


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("soon", "'soon'"),
        ("10 sec", "'10 sec'"),
        ("-1s", "'-1s'"),
        (-1, "-1"),
        (True, "True"),
        ("", "''"),
        ([10], "[10]"),
    ],
)
def test_bad_duration_is_explained(raw: object, shown: str) -> None:
    """A value that is not a non-negative duration names the accepted forms."""
    assert_single_problem(
        {"tracing": {"batch": {"schedule_delay": raw}}},
        f"tracing.batch.schedule_delay: expected {DURATION}, got {shown}",
    )


def test_duration_in_list_item_and_nested_section() -> None:
    """Durations deep in list items are converted too (health check interval and target timeout)."""
    settings = parse_settings(
        {
            "health": {
                "checks": [
                    {
                        "name": "db",
                        "check": {"tcp": {"host": "db", "port": 5432, "timeout": "250ms"}},
                        "interval": "30s",
                        "timeout": "2s",
                    }
                ]
            }
        }
    )
    (check,) = settings.health.checks
    assert (check.interval, check.timeout, check.check.timeout) == (30.0, 2.0, 0.25)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("100MB", 100_000_000),
        ("1GiB", 1_073_741_824),
        ("512KB", 512_000),
        ("512kb", 512_000),
        ("10 MiB", 10_485_760),
        ("1.5KB", 1500),
        ("2TB", 2_000_000_000_000),
        ("64B", 64),
        ("4096", 4096),
        (4096, 4096),
    ],
)
def test_size_becomes_bytes(raw: object, size: int) -> None:
    """Sizes are given with a unit (KB = 1000 bytes, KiB = 1024 bytes) or as bytes."""
    settings = parse_settings(
        {"logging": {"sinks": {"file": {"path": "/x.log", "rotation": {"max_size": raw}}}}}
    )
    assert settings.logging.sinks.file is not None
    assert settings.logging.sinks.file.rotation.max_size == size


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("lots", "'lots'"),
        ("100MBs", "'100MBs'"),
        ("-1MB", "'-1MB'"),
        (-5, "-5"),
        (1.5, "1.5"),
        (True, "True"),
    ],
)
def test_bad_size_is_explained(raw: object, shown: str) -> None:
    """A value that is not a non-negative size names the accepted forms."""
    assert_single_problem(
        {"logging": {"sinks": {"file": {"path": "/x.log", "rotation": {"max_size": raw}}}}},
        f"logging.sinks.file.rotation.max_size: expected {SIZE}, got {shown}",
    )


# --- several problems at once ----------------------------------------------------------------


def test_every_problem_is_listed_at_once() -> None:
    """ConfigError.problems holds one line per problem, and the message lists them all."""
    data = {
        "servce": "api",
        "tracing": {
            "sampling": {"type": "ratio", "rate": "fast"},
            "batch": {"schedule_delay": "soon"},
        },
        "logging": {"level": "loud"},
        "health": {"checks": [{"check": {"tcp": {"host": "db", "port": "x"}}}]},
    }
    expected = [
        "servce: unknown key (did you mean 'service'?)",
        "tracing.sampling.rate: expected a positive number, got 'fast'",
        f"tracing.batch.schedule_delay: expected {DURATION}, got 'soon'",
        f"logging.level: expected one of {LEVELS}, got 'loud'",
        "health.checks[0].check.port: expected a port number from 1 to 65535, got 'x'",
        "health.checks[0].name: required",
    ]
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    assert info.value.problems == expected
    assert str(info.value) == "invalid telemetry configuration:\n" + "\n".join(
        f"  - {p}" for p in expected
    )


def test_source_is_named_in_the_message() -> None:
    """A source given to parse_settings appears in the message and on the error."""
    with pytest.raises(ConfigError) as info:
        parse_settings({"logging": {"level": "loud"}}, source="telemetry.yaml")
    assert info.value.source == "telemetry.yaml"
    assert str(info.value) == (
        f"invalid telemetry configuration in telemetry.yaml: logging.level: expected one of "
        f"{LEVELS}, got 'loud'"
    )


def test_parse_section_prefixes_the_given_path() -> None:
    """parse_section reports problems under the path of the section it was given."""
    with pytest.raises(ConfigError) as info:
        parse_section(SamplingSettings, {"type": "ratio", "rate": 2}, path="tracing.sampling")
    assert info.value.problems == [
        "tracing.sampling.rate: expected a number from 0 to 1 for type 'ratio', got 2.0"
    ]


def test_config_error_is_a_value_error() -> None:
    """ConfigError can be caught as ValueError, the usual exception for bad values."""
    with pytest.raises(ValueError, match=r"^invalid telemetry configuration: servce: unknown key"):
        parse_settings({"servce": "api"})


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(
            {"metrics": {"exporters": [{"type": "datadog", "api_key": ["sk-live-123"]}]}},
            "metrics.exporters[0].api_key: expected a string, got '***'",
            id="datadog-api-key",
        ),
        pytest.param(
            {"metrics": {"exporters": [{"datadog": {"api_key": {"key": "sk-live-123"}}}]}},
            "metrics.exporters[0].api_key: expected a string, got '***'",
            id="datadog-api-key-mapping",
        ),
        pytest.param(
            {"metrics": {"collectors": {"prometheus": {"bearer_token": ["sk-live-123"]}}}},
            "metrics.collectors.prometheus.bearer_token: expected a string, got '***'",
            id="bearer-token",
        ),
        pytest.param(
            {"tracing": {"exporters": {"otlp": {"headers": "Authorization sk-live-123"}}}},
            "tracing.exporters.otlp.headers: expected 'key=value' pairs separated by commas, "
            "got '***'",
            id="otlp-headers-string",
        ),
        pytest.param(
            {"tracing": {"exporters": {"otlp": {"headers": ["sk-live-123"]}}}},
            "tracing.exporters.otlp.headers: expected a mapping of names to values, got '***'",
            id="otlp-headers-list",
        ),
        pytest.param(
            {"tracing": {"exporters": {"otlp": {"headers": {"Authorization": ["sk-live-123"]}}}}},
            "tracing.exporters.otlp.headers.Authorization: expected a string, got '***'",
            id="otlp-header-value",
        ),
        pytest.param(
            {
                "health": {
                    "checks": [
                        {
                            "name": "api",
                            "check": {
                                "type": "http",
                                "url": "http://api/health",
                                "headers": {"Authorization": {"token": "sk-live-123"}},
                            },
                        }
                    ]
                }
            },
            "health.checks[0].check.headers.Authorization: expected a string, got '***'",
            id="health-check-header-value",
        ),
    ],
)
def test_secret_values_are_never_echoed(data: dict[str, Any], problem: str) -> None:
    """A bad value under a secret key is shown as '***' and appears nowhere in the error."""
    with pytest.raises(ConfigError) as info:
        parse_settings(data)
    assert info.value.problems == [problem]
    assert "sk-live-123" not in str(info.value)


# --- tagged sections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("always_on", SamplingSettings(type="always_on"), id="name"),
        pytest.param("ALWAYS_OFF", SamplingSettings(type="always_off"), id="name-any-case"),
        pytest.param(
            {"type": "ratio", "rate": 0.1}, SamplingSettings(type="ratio", rate=0.1), id="type-key"
        ),
        pytest.param(
            {"ratio": {"rate": 0.1}}, SamplingSettings(type="ratio", rate=0.1), id="nested"
        ),
        pytest.param({"always_on": None}, SamplingSettings(type="always_on"), id="nested-empty"),
        pytest.param(
            {"ratio": {"rate": 0}}, SamplingSettings(type="ratio", rate=0.0), id="ratio-zero"
        ),
        pytest.param(
            {"ratio": {"rate": 1}}, SamplingSettings(type="ratio", rate=1.0), id="ratio-one"
        ),
        pytest.param(
            {"rate_limiting": {"rate": 50}},
            SamplingSettings(type="rate_limiting", rate=50.0),
            id="rate-limiting",
        ),
        pytest.param(
            {"parent_based": {"root": "always_off"}},
            SamplingSettings(type="parent_based", root=SamplingSettings(type="always_off")),
            id="parent-based-root-name",
        ),
        pytest.param(
            {"type": "parent_based", "root": {"ratio": {"rate": 0.25}}},
            SamplingSettings(type="parent_based", root=SamplingSettings(type="ratio", rate=0.25)),
            id="parent-based-root-nested",
        ),
        pytest.param({}, SamplingSettings(type="parent_based"), id="default"),
    ],
)
def test_sampling_accepts_every_tagged_form(raw: object, expected: SamplingSettings) -> None:
    """Sampling is given as a name, as {type: ..., key: ...} or as {name: {key: ...}}."""
    assert parse_settings({"tracing": {"sampling": raw}}).tracing.sampling == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"type": "tcp", "host": "db", "port": 5432},
            HealthCheckTargetSettings(type="tcp", host="db", port=5432),
            id="tcp-type-key",
        ),
        pytest.param(
            {"tcp": {"host": "db", "port": 5432}},
            HealthCheckTargetSettings(type="tcp", host="db", port=5432),
            id="tcp-nested",
        ),
        pytest.param(
            {"http": {"url": "http://api/health", "expected_status": 204, "headers": {"A": "b"}}},
            HealthCheckTargetSettings(
                type="http", url="http://api/health", expected_status=204, headers={"A": "b"}
            ),
            id="http-nested",
        ),
        pytest.param(
            {"type": "script", "command": "/bin/check", "timeout": "3s"},
            HealthCheckTargetSettings(type="script", command="/bin/check", timeout=3.0),
            id="script-type-key",
        ),
    ],
)
def test_health_check_target_accepts_every_tagged_form(
    raw: object, expected: HealthCheckTargetSettings
) -> None:
    """A health check target is given as {type: ..., key: ...} or as {name: {key: ...}}."""
    settings = parse_settings({"health": {"checks": [{"name": "c", "check": raw}]}})
    assert settings.health.checks[0].check == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"type": "filter", "field": "path", "exclude": ["/health"]},
            LogProcessorSettings(type="filter", field="path", exclude=("/health",)),
            id="filter",
        ),
        pytest.param(
            {"add_fields": {"fields": {"region": "eu"}}},
            LogProcessorSettings(type="add_fields", fields={"region": "eu"}),
            id="add-fields-nested",
        ),
    ],
)
def test_log_processor_accepts_tagged_forms(raw: object, expected: LogProcessorSettings) -> None:
    """A log processor is given as {type: ..., key: ...} or as {name: {key: ...}}."""
    assert parse_settings({"logging": {"processors": [raw]}}).logging.processors == (expected,)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(
            {"tracing": {"sampling": {"type": "always_on", "rate": 0.5}}},
            f"tracing.sampling.rate: not used by type 'always_on' {USED_BY_RATE}",
            id="rate-under-always-on",
        ),
        pytest.param(
            {"tracing": {"sampling": {"always_off": {"rate": 0.5}}}},
            f"tracing.sampling.rate: not used by type 'always_off' {USED_BY_RATE}",
            id="rate-under-always-off-nested",
        ),
        pytest.param(
            {"tracing": {"sampling": {"ratio": {"rate": 0.5, "root": "always_on"}}}},
            "tracing.sampling.root: not used by type 'ratio' (used by 'parent_based')",
            id="root-under-ratio",
        ),
        pytest.param(
            {"tracing": {"sampling": {"rate": 0.1}}},
            f"tracing.sampling.rate: not used by type 'parent_based' {USED_BY_RATE}",
            id="rate-under-default-type",
        ),
        pytest.param(
            {
                "health": {
                    "checks": [{"name": "a", "check": {"http": {"url": "http://a", "port": 5}}}]
                }
            },
            "health.checks[0].check.port: not used by type 'http' (used by 'tcp')",
            id="port-under-http",
        ),
        pytest.param(
            {"logging": {"processors": [{"type": "filter", "field": "a", "fields": {"b": 1}}]}},
            "logging.processors[0].fields: not used by type 'filter' (used by 'add_fields')",
            id="fields-under-filter",
        ),
        pytest.param(
            {"health": {"checks": [{"name": "a", "check": {"ftp": {"host": "h"}}}]}},
            "health.checks[0].check.ftp: unknown key",
            id="unknown-nested-type",
        ),
    ],
)
def test_key_of_another_type_is_rejected(data: dict[str, Any], problem: str) -> None:
    """A key that the section's type does not use is an error naming the types that use it."""
    assert problems_of(data)[0] == problem


# --- checks across keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(
            {"tracing": {"sampling": {"type": "ratio", "rate": 1.5}}},
            "tracing.sampling.rate: expected a number from 0 to 1 for type 'ratio', got 1.5",
            id="ratio-above-one",
        ),
        pytest.param(
            {"tracing": {"sampling": {"ratio": {"rate": -0.5}}}},
            "tracing.sampling.rate: expected a number from 0 to 1 for type 'ratio', got -0.5",
            id="ratio-negative",
        ),
        pytest.param(
            {"tracing": {"sampling": "ratio"}},
            "tracing.sampling.rate: expected a number from 0 to 1 for type 'ratio', got None",
            id="ratio-without-rate",
        ),
        pytest.param(
            {"tracing": {"sampling": {"parent_based": {"root": {"ratio": {"rate": 3}}}}}},
            "tracing.sampling.root.rate: expected a number from 0 to 1 for type 'ratio', got 3.0",
            id="root-ratio-above-one",
        ),
        pytest.param(
            {"tracing": {"sampling": {"rate_limiting": {"rate": 0}}}},
            "tracing.sampling.rate: expected a positive number of traces per second, got 0.0",
            id="rate-limiting-zero",
        ),
        pytest.param(
            {"tracing": {"sampling": {"parent_based": {"root": "parent_based"}}}},
            "tracing.sampling.root: expected the sampler for root spans, "
            "not another 'parent_based'",
            id="parent-based-root-parent-based",
        ),
        pytest.param(
            {"tracing": {"batch": {"max_queue_size": 10, "max_export_batch_size": 20}}},
            "tracing.batch.max_export_batch_size: expected at most max_queue_size (10), got 20",
            id="batch-larger-than-queue",
        ),
        pytest.param(
            {"metrics": {"duration_buckets": [1, 0.5]}},
            "metrics.duration_buckets: expected increasing numbers, got [1.0, 0.5]",
            id="buckets-unsorted",
        ),
        pytest.param(
            {"metrics": {"duration_buckets": [0.5, 0.5, 1]}},
            "metrics.duration_buckets: expected increasing numbers, got [0.5, 0.5, 1.0]",
            id="buckets-duplicate",
        ),
        pytest.param(
            {"metrics": {"duration_buckets": []}},
            "metrics.duration_buckets: expected increasing numbers, got []",
            id="buckets-empty",
        ),
        pytest.param(
            {"logging": {"processors": [{"type": "add_fields"}]}},
            "logging.processors[0].fields: expected at least one field to add "
            "for type 'add_fields'",
            id="add-fields-empty",
        ),
        pytest.param(
            {"labels": {"__name": "x"}},
            f"labels: expected {LABEL_NAMES}, got {{'__name': 'x'}}",
            id="label-reserved-prefix",
        ),
        pytest.param(
            {"labels": {"team": "a", "1st": "x"}},
            f"labels: expected {LABEL_NAMES}, got {{'team': 'a', '1st': 'x'}}",
            id="label-starts-with-digit",
        ),
        pytest.param(
            {"labels": {"team-name": "x"}},
            f"labels: expected {LABEL_NAMES}, got {{'team-name': 'x'}}",
            id="label-with-dash",
        ),
    ],
)
def test_semantic_check_names_path_and_value(data: dict[str, Any], problem: str) -> None:
    """Checks that span several keys report the key at fault with the offending value."""
    assert_single_problem(data, problem)


def test_valid_labels_and_buckets_are_kept() -> None:
    """Label names of letters, digits and '_' and increasing buckets are accepted as given."""
    settings = parse_settings(
        {"labels": {"team": "core", "_tier2": "web"}, "metrics": {"duration_buckets": [0.1, 1, 5]}}
    )
    assert settings.labels == {"team": "core", "_tier2": "web"}
    assert settings.metrics.duration_buckets == (0.1, 1.0, 5.0)


def test_label_name_reserved_by_histograms_is_rejected() -> None:
    """'le' is reserved by Prometheus histograms, so it cannot be a constant label."""
    with pytest.raises(ConfigError) as info:
        parse_settings({"labels": {"le": "x"}})
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("labels: ")
    assert "'le'" in info.value.problems[0]


@pytest.mark.parametrize(
    ("raw", "is_on"),
    [(False, False), (None, True), (True, True), ({}, True), ({"prefix": "app"}, True)],
)
def test_optional_section_switches(raw: object, is_on: bool) -> None:
    """An optional section is off with false and on (with defaults) when empty, null or true."""
    statsd = parse_settings({"metrics": {"collectors": {"statsd": raw}}}).metrics.collectors.statsd
    assert (statsd is not None) == is_on


# --- sections not built yet ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        pytest.param(  # every section is built: only combinations are left
            {"tracing": {"exporters": {"jaeger": {"endpoint": "http://j:14268", "agent": {}}}}},
            "tracing.exporters.jaeger: sending to both the collector (endpoint) and the agent "
            "is not supported; set one of them",
            id="jaeger-collector-and-agent",
        ),
    ],
)
def test_section_not_built_yet_is_rejected(config: dict[str, Any], problem: str) -> None:
    """Configuring a section this version cannot act on is a ConfigError, never a silent no-op."""
    with pytest.raises(ConfigError) as info:
        Telemetry(config=config, use_env=False)
    assert info.value.problems == [problem]
    assert str(info.value) == f"invalid telemetry configuration: {problem}"


def test_section_not_built_yet_switched_off_is_accepted() -> None:
    """A section not built yet that is switched off with false is no error."""
    config = {
        **QUIET,
        "metrics": {"collectors": {"statsd": False}, "exporters": []},
        "tracing": {"exporters": {"jaeger": False}},
    }
    telemetry = Telemetry(config=config, use_env=False)
    try:
        assert telemetry.settings.metrics.collectors.statsd is None
        assert telemetry.settings.tracing.exporters.jaeger is None
    finally:
        telemetry.shutdown()


def test_reconfiguring_with_a_section_not_built_yet_keeps_the_settings() -> None:
    """configure_metrics with a section not built yet raises and leaves the settings unchanged."""
    telemetry = Telemetry(config=QUIET, use_env=False)
    try:
        before = telemetry.settings
        jaeger = {"exporters": {"jaeger": {"endpoint": "http://j:14268", "agent": {}}}}
        with pytest.raises(ConfigError) as info:
            telemetry.configure_tracing(jaeger)
        assert info.value.problems[0].startswith("tracing.exporters.jaeger: sending to both")
        assert telemetry.settings is before
    finally:
        telemetry.shutdown()


def test_reconfiguring_with_a_bad_section_names_its_path() -> None:
    """configure_tracing with bad data reports key paths under 'tracing'."""
    telemetry = Telemetry(config=QUIET, use_env=False)
    try:
        with pytest.raises(ConfigError) as info:
            telemetry.configure_tracing({"sampling": {"ratio": {"rate": 2}}})
        assert info.value.problems == [
            "tracing.sampling.rate: expected a number from 0 to 1 for type 'ratio', got 2.0"
        ]
    finally:
        telemetry.shutdown()
