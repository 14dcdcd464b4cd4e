"""Configuration sources: YAML files, code, OTEL_* and TELEMETRY_* variables, and precedence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from telemetry_web import _otel_env
from telemetry_web.config import (
    SamplingSettings,
    TelemetrySettings,
    load_settings,
    parse_settings,
    settings_to_mapping,
)
from telemetry_web.errors import ConfigError

WriteConfig = Callable[..., Path]
SAMPLERS = "'always_on', 'always_off', 'ratio', 'rate_limiting', 'parent_based'"
DEFAULTS = TelemetrySettings()


@pytest.fixture(autouse=True)
def fresh_warnings() -> None:
    """Each test sees the one warning per bad variable that a new process would print."""
    _otel_env._warned.clear()


@pytest.fixture
def config_file(tmp_path: Path) -> WriteConfig:
    """Write YAML text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "telemetry.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- YAML files ------------------------------------------------------------------------------

FLAT = "service: filesvc\nlogging:\n  level: warning\n"
WRAPPED = "telemetry:\n  service: filesvc\n  logging:\n    level: warning\n"


@pytest.mark.parametrize("text", [FLAT, WRAPPED], ids=["flat", "telemetry-wrapper"])
@pytest.mark.parametrize("as_str", [True, False], ids=["str-path", "Path"])
def test_yaml_file_from_explicit_path(config_file: WriteConfig, text: str, as_str: bool) -> None:
    """A YAML file given as config= is loaded, with or without a top-level 'telemetry:' key."""
    path = config_file(text)
    settings = load_settings(str(path) if as_str else path, environ={})
    assert (settings.service, settings.logging.level) == ("filesvc", "warning")


def test_yaml_file_from_telemetry_config_variable(config_file: WriteConfig) -> None:
    """TELEMETRY_CONFIG names the YAML file when config= is not given."""
    path = config_file(WRAPPED)
    settings = load_settings(environ={"TELEMETRY_CONFIG": str(path)})
    assert (settings.service, settings.logging.level) == ("filesvc", "warning")


def test_telemetry_config_file_is_below_code_mapping(config_file: WriteConfig) -> None:
    """With TELEMETRY_CONFIG and a mapping in code, the file is read and the code wins."""
    path = config_file(FLAT)
    settings = load_settings({"service": "codesvc"}, environ={"TELEMETRY_CONFIG": str(path)})
    assert (settings.service, settings.logging.level) == ("codesvc", "warning")


def test_explicit_path_wins_over_telemetry_config(config_file: WriteConfig) -> None:
    """A path given in code is read instead of the one in TELEMETRY_CONFIG."""
    explicit = config_file("service: explicit\n", name="explicit.yaml")
    from_env = config_file("service: from-env\n", name="env.yaml")
    settings = load_settings(explicit, environ={"TELEMETRY_CONFIG": str(from_env)})
    assert settings.service == "explicit"


def test_telemetry_config_is_ignored_without_env(config_file: WriteConfig) -> None:
    """use_env=False ignores TELEMETRY_CONFIG too."""
    path = config_file(FLAT)
    settings = load_settings(environ={"TELEMETRY_CONFIG": str(path)}, use_env=False)
    assert settings == TelemetrySettings()


def test_empty_yaml_file_gives_defaults(config_file: WriteConfig) -> None:
    """An empty file is the default configuration."""
    assert load_settings(config_file(""), environ={}) == TelemetrySettings()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            "service: a\n  bad: indent\n",
            "line 2, column 6: not valid YAML (mapping values are not allowed here)",
            id="bad-indent",
        ),
        pytest.param(
            "service: a\nlogging:\n  level: [debug\n",
            "line 4, column 1: not valid YAML (expected ',' or ']', but got '<stream end>')",
            id="unclosed-bracket",
        ),
        pytest.param(
            "\tservice: a\n",
            "line 1, column 1: not valid YAML (found character '\\t' that cannot start any token)",
            id="tab",
        ),
        pytest.param("- a\n- b\n", "<root>: expected a mapping, got list", id="not-a-mapping"),
        pytest.param(
            "tracing:\n  samplng: ratio\n",
            "tracing.samplng: unknown key (did you mean 'sampling'?)",
            id="bad-key",
        ),
    ],
)
def test_bad_yaml_file_error_names_file_and_line(
    config_file: WriteConfig, text: str, problem: str
) -> None:
    """A file that is not valid YAML, or not valid configuration, is named with the problem."""
    path = config_file(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.problems == [problem]
    assert info.value.source == str(path)
    assert str(info.value) == f"invalid telemetry configuration in {path}: {problem}"


def test_missing_file_error_names_file(tmp_path: Path) -> None:
    """A file that cannot be read is named, with the reason."""
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    assert info.value.problems == ["cannot read the file: No such file or directory"]
    assert str(info.value) == (
        f"invalid telemetry configuration in {path}: "
        "cannot read the file: No such file or directory"
    )


def test_missing_file_from_telemetry_config_is_an_error(tmp_path: Path) -> None:
    """A TELEMETRY_CONFIG naming a missing file is an error, not silently ignored."""
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=r"in .*missing\.yaml: cannot read the file"):
        load_settings(environ={"TELEMETRY_CONFIG": str(path)})


def test_config_of_another_type_is_rejected() -> None:
    """config= must be a path, a mapping or TelemetrySettings."""
    with pytest.raises(ConfigError) as info:
        load_settings(5, environ={})  # type: ignore[arg-type]
    assert info.value.problems == [
        "<root>: expected a YAML path, a mapping or TelemetrySettings, got 5"
    ]


# --- precedence ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "environ", "expected"),
    [
        pytest.param(None, {}, "from-file", id="file"),
        pytest.param({"service": "from-code"}, {}, "from-code", id="code-over-file"),
        pytest.param(
            {"service": "from-code"},
            {"OTEL_SERVICE_NAME": "from-otel"},
            "from-otel",
            id="otel-over-code",
        ),
        pytest.param(
            {"service": "from-code"},
            {"OTEL_SERVICE_NAME": "from-otel", "TELEMETRY_SERVICE": "from-telemetry"},
            "from-telemetry",
            id="telemetry-over-otel",
        ),
        pytest.param(
            None, {"TELEMETRY_SERVICE": "from-telemetry"}, "from-telemetry", id="env-over-file"
        ),
    ],
)
def test_precedence_file_code_otel_telemetry(
    config_file: WriteConfig, code: dict[str, Any] | None, environ: dict[str, str], expected: str
) -> None:
    """Each source overrides the earlier ones: file < code < OTEL_* < TELEMETRY_*."""
    path = config_file("service: from-file\n")
    settings = load_settings(code, environ={"TELEMETRY_CONFIG": str(path), **environ})
    assert settings.service == expected


def test_keyword_override_wins_over_code_mapping() -> None:
    """Keyword arguments given in code override the code mapping; None keywords are ignored."""
    settings = load_settings(
        {"service": "mapping", "environment": "staging"}, service="kw", environment=None, environ={}
    )
    assert (settings.service, settings.environment) == ("kw", "staging")


def test_sources_merge_key_by_key(config_file: WriteConfig) -> None:
    """Sources merge deeply: each sets its own keys of a section and keeps the others."""
    path = config_file(
        "logging:\n  level: warning\n  format: console\ntracing:\n  enabled: false\n"
    )
    settings = load_settings(
        path,
        logging={"format": "json", "request_log": False},
        environ={"TELEMETRY_LOGGING__LEVEL": "error"},
    )
    assert (
        settings.logging.level,
        settings.logging.format,
        settings.logging.request_log,
        settings.tracing.enabled,
    ) == ("error", "json", False, False)


def test_environ_argument_replaces_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """With environ= given, the process environment is not read."""
    monkeypatch.setenv("TELEMETRY_SERVICE", "from-process")
    assert load_settings(environ={}).service == "unknown_service"


def test_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without environ=, the process environment is read."""
    monkeypatch.setenv("TELEMETRY_SERVICE", "from-process")
    assert load_settings().service == "from-process"


def test_use_env_false_ignores_every_variable() -> None:
    """use_env=False ignores OTEL_* and TELEMETRY_* variables, even given in environ=."""
    environ = {
        "OTEL_SERVICE_NAME": "otel",
        "OTEL_TRACES_SAMPLER": "always_off",
        "OTEL_PROPAGATORS": "baggage",
        "TELEMETRY_ENVIRONMENT": "prod",
        "TELEMETRY_LOGGING__LEVEL": "debug",
    }
    settings = load_settings({"service": "code"}, environ=environ, use_env=False)
    assert settings == TelemetrySettings(service="code")


# --- OTEL_* variables ------------------------------------------------------------------------


def test_otel_service_name() -> None:
    """OTEL_SERVICE_NAME sets the service."""
    assert load_settings(environ={"OTEL_SERVICE_NAME": "checkout"}).service == "checkout"


def test_otel_resource_attributes() -> None:
    """OTEL_RESOURCE_ATTRIBUTES sets service, environment and the resource attributes."""
    settings = load_settings(
        environ={
            "OTEL_RESOURCE_ATTRIBUTES": "service.name=checkout, deployment.environment=prod,team=x"
        }
    )
    assert (settings.service, settings.environment) == ("checkout", "prod")
    assert settings.tracing.resource_attributes == {
        "service.name": "checkout",
        "deployment.environment": "prod",
        "team": "x",
    }


def test_otel_resource_attributes_environment_name() -> None:
    """deployment.environment.name (the newer attribute) sets the environment too."""
    settings = load_settings(
        environ={"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging"}
    )
    assert settings.environment == "staging"


def test_otel_service_name_wins_over_resource_attribute() -> None:
    """OTEL_SERVICE_NAME takes precedence over service.name in OTEL_RESOURCE_ATTRIBUTES."""
    settings = load_settings(
        environ={"OTEL_RESOURCE_ATTRIBUTES": "service.name=res", "OTEL_SERVICE_NAME": "svc"}
    )
    assert settings.service == "svc"


@pytest.mark.parametrize(
    ("sampler", "arg", "expected"),
    [
        ("always_on", None, SamplingSettings(type="always_on")),
        ("always_off", None, SamplingSettings(type="always_off")),
        ("ALWAYS_ON", None, SamplingSettings(type="always_on")),
        ("traceidratio", "0.25", SamplingSettings(type="ratio", rate=0.25)),
        ("traceidratio", None, SamplingSettings(type="ratio", rate=1.0)),
        (
            "parentbased_always_on",
            None,
            SamplingSettings(type="parent_based", root=SamplingSettings(type="always_on")),
        ),
        (
            "parentbased_always_off",
            "0.5",
            SamplingSettings(type="parent_based", root=SamplingSettings(type="always_off")),
        ),
        (
            "parentbased_traceidratio",
            "0.1",
            SamplingSettings(type="parent_based", root=SamplingSettings(type="ratio", rate=0.1)),
        ),
        (
            "parentbased_traceidratio",
            None,
            SamplingSettings(type="parent_based", root=SamplingSettings(type="ratio", rate=1.0)),
        ),
    ],
)
def test_otel_traces_sampler(sampler: str, arg: str | None, expected: SamplingSettings) -> None:
    """OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG map to the sampling section."""
    environ = {"OTEL_TRACES_SAMPLER": sampler}
    if arg is not None:
        environ["OTEL_TRACES_SAMPLER_ARG"] = arg
    assert load_settings(environ=environ).tracing.sampling == expected


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "jaeger_remote"},
            f"tracing.sampling.type: expected one of {SAMPLERS}, got 'jaeger_remote'",
            id="unknown-sampler",
        ),
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "half"},
            "tracing.sampling.rate: expected a positive number, got 'half'",
            id="arg-not-a-number",
        ),
        pytest.param(
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
            "tracing.sampling.root.rate: expected a number from 0 to 1 for type 'ratio', got 2.0",
            id="arg-above-one",
        ),
        pytest.param(
            {"OTEL_PROPAGATORS": "xray"},
            "ignoring 'xray' in OTEL_PROPAGATORS='xray': telemetry-web reads tracecontext, "
            "baggage, b3, b3multi (or none); using the configured ones",
            id="unknown-propagator",
        ),
    ],
)
def test_bad_otel_variable_is_a_warning_naming_the_key(
    environ: dict[str, str], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad OTEL_* value is ignored with one warning naming the variable and the problem at
    the key it maps to; the configuration keeps its default."""
    assert load_settings(environ=environ) == DEFAULTS
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert problem in warnings[0]
    assert next(iter(environ)) in warnings[0]


def test_otel_sampler_replaces_sampling_from_code() -> None:
    """OTEL_TRACES_SAMPLER replaces the whole sampler configured in code, not only its type."""
    settings = load_settings(
        {"tracing": {"sampling": {"type": "ratio", "rate": 0.1}}},
        environ={"OTEL_TRACES_SAMPLER": "always_on"},
    )
    assert settings.tracing.sampling == SamplingSettings(type="always_on")


def test_otel_sampler_applies_over_ready_settings() -> None:
    """OTEL_TRACES_SAMPLER applies when the code passes ready TelemetrySettings."""
    settings = load_settings(
        TelemetrySettings(),
        environ={"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    )
    assert settings.tracing.sampling == SamplingSettings(type="ratio", rate=0.1)


@pytest.mark.parametrize(
    ("environ", "endpoint", "protocol"),
    [
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
            "http://collector:4318",
            "http/protobuf",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            "http://collector:4317",
            "grpc",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            },
            "http://traces:4318/v1/traces",
            "http/protobuf",
        ),
    ],
    ids=["endpoint", "endpoint-and-protocol", "traces-specific-wins"],
)
def test_otel_exporter_otlp(environ: dict[str, str], endpoint: str, protocol: str) -> None:
    """OTEL_EXPORTER_OTLP_* switch on the OTLP exporter with its endpoint and protocol."""
    otlp = load_settings(environ=environ).tracing.exporters.otlp
    assert otlp is not None
    assert (otlp.endpoint, otlp.protocol) == (endpoint, protocol)


def test_otlp_endpoint_from_env_keeps_code_headers() -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT overrides the endpoint and keeps other OTLP keys from code."""
    settings = load_settings(
        {
            "tracing": {
                "exporters": {"otlp": {"endpoint": "http://code:4318", "headers": {"k": "v"}}}
            }
        },
        environ={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318"},
    )
    otlp = settings.tracing.exporters.otlp
    assert otlp is not None
    assert (otlp.endpoint, otlp.headers) == ("http://env:4318", {"k": "v"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("tracecontext", ("w3c",)),
        ("baggage", ("baggage",)),
        ("baggage, tracecontext", ("baggage", "w3c")),
        ("tracecontext,baggage", ("w3c", "baggage")),
        ("none", ()),
    ],
)
def test_otel_propagators(value: str, expected: tuple[str, ...]) -> None:
    """OTEL_PROPAGATORS maps tracecontext to w3c, keeps the order, and 'none' means none."""
    settings = load_settings(
        {"tracing": {"propagation": ["w3c"]}}, environ={"OTEL_PROPAGATORS": value}
    )
    assert settings.tracing.propagation == expected


# --- TELEMETRY_* variables -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("TELEMETRY_LOGGING__LEVEL", "DEBUG", ("logging", "level"), "debug"),
        (
            "TELEMETRY_TRACING__PROPAGATION",
            "w3c,baggage",
            ("tracing", "propagation"),
            ("w3c", "baggage"),
        ),
        ("TELEMETRY_SERVICE", "123", ("service",), "123"),
        ("TELEMETRY_ENVIRONMENT", "prod", ("environment",), "prod"),
        ("TELEMETRY_METRICS__ENABLED", "false", ("metrics", "enabled"), False),
        (
            "TELEMETRY_TRACING__BATCH__SCHEDULE_DELAY",
            "250ms",
            ("tracing", "batch", "schedule_delay"),
            0.25,
        ),
        (
            "TELEMETRY_TRACING__BATCH__MAX_QUEUE_SIZE",
            "4096",
            ("tracing", "batch", "max_queue_size"),
            4096,
        ),
        ("TELEMETRY_LABELS", "team=core,tier=web", ("labels",), {"team": "core", "tier": "web"}),
        (
            "TELEMETRY_TRACING__SAMPLING",
            "always_off",
            ("tracing", "sampling"),
            SamplingSettings(type="always_off"),
        ),
        (
            "TELEMETRY_HTTP__EXCLUDE_PATHS",
            "/static/*, /favicon.ico",
            ("http", "exclude_paths"),
            ("/static/*", "/favicon.ico"),
        ),
        (
            "TELEMETRY_METRICS__DURATION_BUCKETS",
            "0.1,0.5,1",
            ("metrics", "duration_buckets"),
            (0.1, 0.5, 1.0),
        ),
    ],
)
def test_telemetry_variable_overrides_key(
    name: str, value: str, attribute: tuple[str, ...], expected: object
) -> None:
    """TELEMETRY_<SECTION>__<KEY> sets that key over the code configuration."""
    code = {
        "logging": {"level": "error"},
        "tracing": {"propagation": ["baggage"]},
        "service": "code",
    }
    result: Any = load_settings(code, environ={name: value})
    for part in attribute:
        result = getattr(result, part)
    assert result == expected


def test_telemetry_variable_sets_rate_of_tagged_sampling_from_code() -> None:
    """TELEMETRY_TRACING__SAMPLING__RATE overrides the rate of a sampler written {ratio: {rate}}."""
    settings = load_settings(
        {"tracing": {"sampling": {"ratio": {"rate": 0.1}}}},
        environ={"TELEMETRY_TRACING__SAMPLING__RATE": "0.5"},
    )
    assert settings.tracing.sampling == SamplingSettings(type="ratio", rate=0.5)


def test_telemetry_variables_build_a_tagged_section() -> None:
    """TELEMETRY_TRACING__SAMPLING__TYPE and __RATE together give a ratio sampler."""
    settings = load_settings(
        environ={
            "TELEMETRY_TRACING__SAMPLING__TYPE": "ratio",
            "TELEMETRY_TRACING__SAMPLING__RATE": "0.5",
        }
    )
    assert settings.tracing.sampling == SamplingSettings(type="ratio", rate=0.5)


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        pytest.param(
            {"TELEMETRY_LOGGIN__LEVEL": "debug"},
            "loggin: unknown key (did you mean 'logging'?)",
            id="unknown-section",
        ),
        pytest.param(
            {"TELEMETRY_LOGGING__LEVEL": "loud"},
            "logging.level: expected one of 'debug', 'info', 'warning', 'error', 'critical', "
            "got 'loud'",
            id="bad-value",
        ),
        pytest.param(
            {"TELEMETRY_TRACING__BATCH__SCHEDULE_DELAY": "soon"},
            "tracing.batch.schedule_delay: expected a duration such as '500ms', '10s', '5m', "
            "'15d' or seconds, got 'soon'",
            id="bad-duration",
        ),
    ],
)
def test_bad_telemetry_variable_is_a_warning_naming_the_key(
    environ: dict[str, str], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad TELEMETRY_* variable is ignored with one warning naming it and the problem at its
    configuration key path; the configuration keeps its default."""
    assert load_settings(environ=environ) == DEFAULTS
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert f"ignoring {next(iter(environ))}: {problem}; using " in warnings[0]


def test_variables_outside_the_prefix_are_ignored() -> None:
    """Variables that are neither TELEMETRY_* nor known OTEL_* ones change nothing."""
    environ = {"PATH": "/bin", "OTEL_SDK_DISABLED": "true", "TELEMETRYX": "1", "TELEMETRY_": "x"}
    assert load_settings(environ=environ) == TelemetrySettings()


# --- settings_to_mapping ---------------------------------------------------------------------

ROUND_TRIPS: list[Any] = [
    pytest.param({}, id="defaults"),
    pytest.param(
        {
            "logging": {
                "sinks": {"console": {"enabled": False, "stream": "stderr", "pretty": True}},
                "processors": [
                    {"type": "filter", "field": "path", "exclude": ["/health"]},
                    {"add_fields": {"fields": {"region": "eu", "n": 1}}},
                ],
                "levels": {"sqlalchemy.engine": "warning"},
            }
        },
        id="disabled-console-and-processors",
    ),
    pytest.param({"logging": {"sinks": {"console": False}}}, id="console-switched-off"),
    pytest.param(
        {
            "service": "api",
            "environment": "prod",
            "labels": {"team": "core"},
            "metrics": {
                "naming": "otel",
                "duration_buckets": [0.1, 1, 10],
                "collectors": {"prometheus": {"port": 9100, "bearer_token": "t"}},
            },
            "tracing": {
                "sampling": {"parent_based": {"root": {"ratio": {"rate": 0.25}}}},
                "propagation": ["baggage"],
                "exporters": {"otlp": {"endpoint": "http://c:4318", "timeout": "2s"}, "zipkin": {}},
                "batch": {"max_queue_size": 100, "max_export_batch_size": 10},
            },
            "health": {
                "checks": [
                    {"name": "db", "check": {"tcp": {"host": "db", "port": 5432}}},
                    {"name": "api", "check": {"http": {"url": "http://a/h"}}, "critical": False},
                ]
            },
            "http": {"exclude_paths": ["/static/*"], "redact_headers": ["x-api-key"]},
        },
        id="everything",
    ),
    pytest.param({"tracing": {"sampling": "always_off"}}, id="always-off"),
    pytest.param({"tracing": {"sampling": {"rate_limiting": {"rate": 5}}}}, id="rate-limiting"),
]


@pytest.mark.parametrize("config", ROUND_TRIPS)
def test_settings_round_trip(config: dict[str, Any]) -> None:
    """load_settings(settings, use_env=False) gives back the same settings."""
    settings = parse_settings(config)
    assert load_settings(settings, use_env=False) == settings
    assert parse_settings(settings_to_mapping(settings)) == settings


def test_settings_to_mapping_of_disabled_console_and_filter() -> None:
    """A disabled console sink and a filter processor map to plain data with only their keys."""
    settings = parse_settings(
        {
            "logging": {
                "sinks": {"console": {"enabled": False}},
                "processors": [{"type": "filter", "field": "path", "exclude": ["/health"]}],
            }
        }
    )
    logging = settings_to_mapping(settings)["logging"]
    assert logging["sinks"] == {
        "console": {"enabled": False, "stream": "stdout"},
        "file": False,
        "elasticsearch": False,
        "otlp": False,
    }
    assert logging["processors"] == [{"type": "filter", "field": "path", "exclude": ["/health"]}]


def test_ready_settings_still_take_env_overrides() -> None:
    """Ready TelemetrySettings given in code are overridden by TELEMETRY_* variables."""
    settings = parse_settings({"service": "code", "logging": {"level": "warning"}})
    loaded = load_settings(settings, environ={"TELEMETRY_SERVICE": "env"})
    assert (loaded.service, loaded.logging.level) == ("env", "warning")
