"""The app: system checks, the TELEMETRY setting, the one Telemetry, the missing extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.apps import apps
from django.core.checks import run_checks
from django.test import override_settings

from telemetry_web import ConfigError, Telemetry
from telemetry_web.django import DjangoTelemetryMiddleware, get_telemetry, set_telemetry
from telemetry_web.django._state import build_telemetry, service_from_settings_module
from telemetry_web.testing import CapturedTelemetry

from .conftest import MIDDLEWARE

OURS = MIDDLEWARE[0]
COMMON = MIDDLEWARE[1]
SECURITY = "django.middleware.security.SecurityMiddleware"


class SubclassedMiddleware(DjangoTelemetryMiddleware):
    """A project's own subclass counts as the middleware."""


def _our_messages() -> list[tuple[str, str]]:
    return [
        (m.id, type(m).__name__) for m in run_checks() if (m.id or "").startswith("telemetry_web")
    ]


@pytest.mark.parametrize(
    ("middleware", "expected"),
    [
        ([OURS, COMMON], []),
        ([OURS], []),
        (["telemetry_web.django.middleware.DjangoTelemetryMiddleware", COMMON], []),
        (["telemetry_web.django.TelemetryMiddleware", COMMON], []),  # the former name
        (["telemetry_web.django.middleware.TelemetryMiddleware", COMMON], []),
        ([f"{__name__}.SubclassedMiddleware", COMMON], []),
        ([COMMON], [("telemetry_web.W001", "Warning")]),
        ([], [("telemetry_web.W001", "Warning")]),
        ([SECURITY, OURS, COMMON], [("telemetry_web.W002", "Warning")]),
        ([COMMON, f"{__name__}.SubclassedMiddleware"], [("telemetry_web.W002", "Warning")]),
    ],
)
def test_system_checks(middleware: list[str], expected: list[tuple[str, str]]) -> None:
    """W001 when the middleware is missing from MIDDLEWARE, W002 when it is not first."""
    with override_settings(MIDDLEWARE=middleware):
        assert _our_messages() == expected


def test_check_message_names_the_fix() -> None:
    """The W002 message names what runs before the middleware and the hint says what to do."""
    with override_settings(MIDDLEWARE=[SECURITY, OURS]):
        (message,) = [m for m in run_checks() if m.id == "telemetry_web.W002"]
    assert repr(SECURITY) in message.msg
    assert message.hint == f"Move {OURS!r} to the top of MIDDLEWARE."


def test_one_process_wide_telemetry_held_by_the_app() -> None:
    """ready() built one Telemetry from TELEMETRY; get_telemetry() and the app config share it."""
    config = apps.get_app_config("telemetry_web")
    assert type(config).__name__ == "TelemetryWebConfig"
    assert config.name == "telemetry_web.django"
    telemetry = get_telemetry()
    assert telemetry is get_telemetry() is config.telemetry
    assert telemetry.settings.service == "django-settings"


def test_set_telemetry_overrides_and_restores() -> None:
    """set_telemetry() replaces the project's Telemetry until it is given None."""
    built = get_telemetry()
    own = Telemetry(service="own", use_env=False, config={"logging": {"sinks": {"console": False}}})
    try:
        assert set_telemetry(own) is None
        assert get_telemetry() is own
        assert set_telemetry(None) is own
        assert get_telemetry() is built
    finally:
        set_telemetry(None)
        own.shutdown()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TELEMETRY_* or OTEL_* variable from the outside influences the build."""
    import os

    for name in list(os.environ):
        if name.startswith(("TELEMETRY_", "OTEL_")):
            monkeypatch.delenv(name)


@pytest.fixture
def built() -> Iterator[list[Telemetry]]:
    """Telemetry objects a test builds, shut down afterwards."""
    made: list[Telemetry] = []
    yield made
    for telemetry in made:
        telemetry.shutdown()


QUIET = {"logging": {"sinks": {"console": False}}}


@pytest.mark.usefixtures("clean_env")
def test_telemetry_setting_is_read(built: list[Telemetry]) -> None:
    """The TELEMETRY dict has the YAML file's schema."""
    with override_settings(
        TELEMETRY={**QUIET, "service": "shop", "environment": "prod", "labels": {"team": "a"}}
    ):
        built.append(build_telemetry())
    settings = built[0].settings
    assert settings.service == "shop"
    assert settings.environment == "prod"
    assert settings.labels == {"team": "a"}


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("module", "telemetry", "env", "service"),
    [
        ("mysite.settings", QUIET, {}, "mysite"),
        ("mysite.settings", {**QUIET, "service": "named"}, {}, "named"),
        ("mysite.settings", QUIET, {"OTEL_SERVICE_NAME": "from-env"}, "from-env"),
        ("mysite.settings", {**QUIET, "service": "named"}, {"TELEMETRY_SERVICE": "env"}, "env"),
        (None, QUIET, {}, "unknown_service"),
    ],
)
def test_service_name_precedence(
    built: list[Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    module: str | None,
    telemetry: dict[str, object],
    env: dict[str, str],
    service: str,
) -> None:
    """Without a service anywhere, the settings module's project names it; env still wins."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with override_settings(TELEMETRY=telemetry, SETTINGS_MODULE=module):
        built.append(build_telemetry())
    assert built[0].settings.service == service


@pytest.mark.usefixtures("clean_env")
def test_telemetry_setting_as_a_yaml_path(built: list[Telemetry], tmp_path: Path) -> None:
    """TELEMETRY may name a YAML file instead."""
    path = tmp_path / "telemetry.yaml"
    path.write_text("service: from-yaml\nlogging: {sinks: {console: false}}\n")
    with override_settings(TELEMETRY=str(path)):
        built.append(build_telemetry())
    assert built[0].settings.service == "from-yaml"


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("telemetry", "problem"),
    [
        ({"logging": {"level": "loud"}}, "logging.level"),
        ({"servce": "typo"}, "servce"),
        (42, "TELEMETRY: expected a mapping or the path of a YAML file, got 42"),
    ],
)
def test_invalid_telemetry_setting_is_loud(telemetry: object, problem: str) -> None:
    """A bad TELEMETRY setting raises ConfigError naming the key path."""
    with override_settings(TELEMETRY=telemetry), pytest.raises(ConfigError, match=problem):
        build_telemetry()


@pytest.mark.parametrize(
    ("module", "service"),
    [
        ("mysite.settings", "mysite"),
        ("config.settings.production", "config"),
        ("sample_apps.django_project.settings", "django_project"),
        ("settings", None),
        ("", None),
        (None, None),
    ],
)
def test_service_from_settings_module(module: str | None, service: str | None) -> None:
    """The project is the package holding the settings module, a ``settings`` package skipped."""
    assert service_from_settings_module(module) == service


def test_missing_django_names_the_extra() -> None:
    """Without Django, importing telemetry_web.django raises MissingExtraError with the fix."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["django"] = None
        from telemetry_web import MissingExtraError
        try:
            import telemetry_web.django
        except MissingExtraError as exc:
            assert isinstance(exc, ImportError) and exc.name == "django", exc.name
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "telemetry_web.django needs 'django', which is not installed: "
        "pip install 'telemetry-web[django]'"
    )


@pytest.mark.parametrize(
    "module", ["telemetry_web.django", "telemetry_web.django.middleware"], ids=["package", "module"]
)
def test_former_name_warns_once_and_is_the_middleware(module: str) -> None:
    """``TelemetryMiddleware``, the former name, is DjangoTelemetryMiddleware with one
    DeprecationWarning per use, attributed to the code that used it."""
    import importlib
    import warnings

    package = importlib.import_module(module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(f"from {module} import TelemetryMiddleware as old", {})
        by_attribute = package.TelemetryMiddleware
    assert by_attribute is DjangoTelemetryMiddleware
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
    assert "DjangoTelemetryMiddleware" in str(caught[1].message)
    assert caught[0].filename == "<string>"  # the importing code, not importlib
    assert caught[1].filename == __file__


@pytest.mark.filterwarnings("ignore:telemetry_web.django.TelemetryMiddleware is deprecated")
def test_former_middleware_path_still_records(captured: CapturedTelemetry) -> None:
    """A MIDDLEWARE setting that still names ``telemetry_web.django.TelemetryMiddleware`` works."""
    from django.test import Client

    with override_settings(MIDDLEWARE=["telemetry_web.django.TelemetryMiddleware", COMMON]):
        response = Client().get("/")
    assert response.status_code == 200
    assert response.has_header("X-Request-ID")
    assert captured.sample("http_requests_total", method="GET", route="/", status="200") == 1
