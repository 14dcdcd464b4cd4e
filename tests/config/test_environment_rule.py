"""The environment never fails the configuration (issue 12, item 1): a bad variable is ignored
with one warning naming it and the value used; code and file values still raise ConfigError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry_web import _otel_env
from telemetry_web.config import SamplingSettings, load_settings
from telemetry_web.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    """Each test sees the one warning per bad variable that a new process would print."""
    _otel_env._warned.clear()
    yield
    _otel_env._warned.clear()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "telemetry_web.config"]


def test_bad_variable_keeps_the_file_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bad variable falls back to the file's value, and the warning says which."""
    path = tmp_path / "telemetry.yaml"
    path.write_text("logging:\n  level: warning\n")
    settings = load_settings(str(path), environ={"TELEMETRY_LOGGING__LEVEL": "loud"})
    assert settings.logging.level == "warning"
    (warning,) = warnings_of(caplog)
    assert warning.startswith("telemetry-web: ignoring TELEMETRY_LOGGING__LEVEL: logging.level:")
    assert warning.endswith("using logging.level='warning'")


def test_good_variables_apply_next_to_a_bad_one(caplog: pytest.LogCaptureFixture) -> None:
    """Only the bad variable is ignored; others apply, also ones that need another variable
    first (a rate after its sampler type)."""
    settings = load_settings(
        environ={
            "TELEMETRY_TRACING__SAMPLING__RATE": "0.25",
            "TELEMETRY_TRACING__SAMPLING__TYPE": "ratio",
            "TELEMETRY_LOGGING__LEVEL": "loud",
            "OTEL_SERVICE_NAME": "orders",
        }
    )
    assert settings.tracing.sampling == SamplingSettings(type="ratio", rate=0.25)
    assert settings.service == "orders"
    assert settings.logging.level == "info"
    assert len(warnings_of(caplog)) == 1


def test_variable_may_repair_a_bad_file_value(tmp_path: Path) -> None:
    """A good variable overriding the file's bad key is not an error (as before)."""
    path = tmp_path / "telemetry.yaml"
    path.write_text("logging:\n  level: loud\n")
    settings = load_settings(str(path), environ={"TELEMETRY_LOGGING__LEVEL": "debug"})
    assert settings.logging.level == "debug"


def test_bad_file_value_is_an_error_even_with_bad_variables(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file's problem is a ConfigError naming its key; the bad variable is only warned."""
    path = tmp_path / "telemetry.yaml"
    path.write_text("tracing:\n  sampling: sometimes\n")
    with pytest.raises(ConfigError) as info:
        load_settings(str(path), environ={"TELEMETRY_LOGGING__LEVEL": "loud"})
    assert [p.split(":")[0] for p in info.value.problems] == ["tracing.sampling.type"]
    assert "TELEMETRY_LOGGING__LEVEL" in warnings_of(caplog)[0]


def test_bad_code_value_is_an_error() -> None:
    """A bad value given in code still raises ConfigError with its key path."""
    with pytest.raises(ConfigError, match=r"logging\.level: expected one of"):
        load_settings({"logging": {"level": "loud"}}, environ={})


def test_one_warning_per_process_for_the_same_value(caplog: pytest.LogCaptureFixture) -> None:
    """Reloading (configure_*, each worker's reload) does not repeat the warning."""
    for _ in range(3):
        load_settings(environ={"OTEL_TRACES_SAMPLER": "bogus"})
    assert len(warnings_of(caplog)) == 1


def test_secret_values_are_not_shown(caplog: pytest.LogCaptureFixture) -> None:
    """The warning about a secret key shows '***', never the value used instead."""
    load_settings(
        {"metrics": {"collectors": {"prometheus": {"bearer_token": "s3cret-from-code"}}}},
        environ={"TELEMETRY_METRICS__COLLECTORS__PROMETHEUS__BEARER_TOKEN": "true"},
    )
    (warning,) = warnings_of(caplog)
    assert "s3cret-from-code" not in warning
    assert warning.endswith("using metrics.collectors.prometheus.bearer_token='***'")


def test_resource_attributes_are_percent_decoded_and_malformed_entries_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """OTEL_RESOURCE_ATTRIBUTES values are percent-decoded; entries without key=value are left
    out with one warning."""
    settings = load_settings(
        environ={"OTEL_RESOURCE_ATTRIBUTES": "team=pay%20ments,broken,region=eu%2Cwest"}
    )
    assert settings.tracing.resource_attributes == {"team": "pay ments", "region": "eu,west"}
    (warning,) = warnings_of(caplog)
    assert "ignoring 'broken' in OTEL_RESOURCE_ATTRIBUTES" in warning


@pytest.mark.parametrize(
    "endpoint", ["not a url", "collector:4318", "ftp://collector", "http://", "http://h:99999"]
)
def test_bad_otlp_endpoint_is_ignored(endpoint: str, caplog: pytest.LogCaptureFixture) -> None:
    """An OTLP endpoint variable that is not an http(s) URL is ignored with a warning."""
    settings = load_settings(environ={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert settings.tracing.exporters.otlp is None
    (warning,) = warnings_of(caplog)
    assert warning.startswith(f"telemetry-web: ignoring OTEL_EXPORTER_OTLP_ENDPOINT={endpoint!r}")
