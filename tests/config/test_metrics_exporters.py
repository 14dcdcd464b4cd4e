"""``metrics.exporters``: a list of entries tagged by ``type``, each problem with its key path."""

from __future__ import annotations

from typing import Any

import pytest

from telemetry_web.config import parse_settings
from telemetry_web.config._model import BasicAuthSettings, MetricsExporterSettings
from telemetry_web.errors import ConfigError

WRITE = "http://prometheus:9090/api/v1/write"


def exporters(raw: Any) -> tuple[MetricsExporterSettings, ...]:
    return parse_settings({"metrics": {"exporters": raw}}).metrics.exporters


def test_remote_write_entry_with_every_key() -> None:
    """A remote-write entry keeps its endpoint, interval, timeout, headers and credentials."""
    (entry,) = exporters([{
        "type": "prometheus", "endpoint": WRITE, "interval": "30s", "timeout": "2s",
        "headers": {"X-Scope-OrgID": "team-a"},
        "basic_auth": {"username": "push", "password": "s3cret"},
    }])  # fmt: skip
    assert entry == MetricsExporterSettings(
        type="prometheus", endpoint=WRITE, interval=30.0, timeout=2.0,
        headers={"X-Scope-OrgID": "team-a"},
        basic_auth=BasicAuthSettings(username="push", password="s3cret"),
    )  # fmt: skip


def test_short_forms_and_defaults() -> None:
    """``{prometheus: {...}}`` equals ``{type: prometheus, ...}``; interval 15 s, timeout 10 s."""
    assert exporters([{"prometheus": {"endpoint": WRITE}}]) == exporters(
        [{"type": "prometheus", "endpoint": WRITE}]
    )
    (entry,) = exporters([{"type": "prometheus", "endpoint": WRITE}])
    assert (entry.interval, entry.timeout, entry.headers) == (15.0, 10.0, {})


def test_secrets_stay_out_of_the_repr() -> None:
    """Bearer tokens, passwords, API keys and headers are not in the entry's repr."""
    (entry, dd) = exporters([
        {"type": "prometheus", "endpoint": WRITE, "bearer_token": "tok-123",
         "headers": {"X-Key": "hdr-123"}},
        {"type": "datadog", "api_key": "dd-123"},
    ])  # fmt: skip
    (basic,) = exporters([{"type": "prometheus", "endpoint": WRITE,
                           "basic_auth": {"username": "u", "password": "pw-123"}}])  # fmt: skip
    text = repr((entry, dd, basic))
    for secret in ("tok-123", "hdr-123", "dd-123", "pw-123"):
        assert secret not in text


@pytest.mark.parametrize(
    ("raw", "problems"),
    [
        pytest.param(
            [{"type": "prometheus", "endpoint": "prometheus:9090"}],
            [
                "metrics.exporters[0].endpoint: expected a URL such as "
                "'http://prometheus:9090/api/v1/write', got 'prometheus:9090'"
            ],
            id="endpoint-not-a-url",
        ),
        pytest.param(
            [{"type": "prometheus", "endpoint": WRITE, "interval": "fast"}],
            [
                "metrics.exporters[0].interval: expected a positive duration such as '15s', "
                "got 'fast'"
            ],
            id="interval-fast",
        ),
        pytest.param(
            [{"type": "prometheus", "endpoint": WRITE, "interval": 0}],
            ["metrics.exporters[0].interval: expected a positive duration such as '15s', got 0"],
            id="interval-zero",
        ),
        pytest.param(
            [{"type": "prometheus", "endpoint": WRITE}, {"type": "influx"}],
            [
                "metrics.exporters[1].type: expected one of 'prometheus', 'datadog', 'otlp', "
                "got 'influx'"
            ],
            id="unknown-type",
        ),
        pytest.param(
            [{"type": "prometheus", "endpoint": WRITE, "api_key": "k"}],
            ["metrics.exporters[0].api_key: not used by type 'prometheus' (used by 'datadog')"],
            id="key-of-another-type",
        ),
        pytest.param(
            [
                {
                    "type": "prometheus",
                    "endpoint": WRITE,
                    "bearer_token": "t",
                    "basic_auth": {"username": "u", "password": "p"},
                }
            ],
            ["metrics.exporters[0].bearer_token: expected basic_auth or bearer_token, not both"],
            id="two-credentials",
        ),
        pytest.param(
            [{"type": "prometheus", "endpoint": WRITE, "basic_auth": {"username": "u"}}],
            ["metrics.exporters[0].basic_auth.password: required"],
            id="basic-auth-password",
        ),
        pytest.param(
            [{"type": "prometheus", "endpoint": WRITE, "bearer_token": ["tok-123"]}],
            ["metrics.exporters[0].bearer_token: expected a string, got '***'"],
            id="secret-not-shown",
        ),
        pytest.param(
            [{"type": "prometheus", "endpont": WRITE}],
            ["metrics.exporters[0].endpont: unknown key (did you mean 'endpoint'?)"],
            id="misspelt-key",
        ),
        pytest.param(
            {"prometheus_remote_write": {"endpoint": WRITE}},
            [
                "metrics.exporters: expected a list, got {'prometheus_remote_write': "
                "{'endpoint': 'http://prometheus:9090/api/v1/write'}}"
            ],
            id="old-mapping-shape",
        ),
    ],
)
def test_bad_entries_name_their_key_path(raw: Any, problems: list[str]) -> None:
    """Each bad entry is a ConfigError naming ``metrics.exporters[i].<key>``."""
    with pytest.raises(ConfigError) as info:
        exporters(raw)
    assert info.value.problems == problems


def test_every_exporter_type_is_built() -> None:
    """Remote-write, Datadog and OTLP entries are all accepted: none is refused as not built."""
    from telemetry_web.config._availability import not_built_yet

    settings = parse_settings({"metrics": {"exporters": [
        {"type": "prometheus", "endpoint": WRITE},
        {"type": "datadog", "api_key": "k"},
        {"type": "otlp", "endpoint": "http://collector:4318"},
    ]}})  # fmt: skip
    assert [p for p in not_built_yet(settings) if "metrics.exporters" in p] == []
