"""Setting up the Flask extension: the factory pattern, several apps, configuration, the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask

import telemetry_web
from telemetry_web.flask import FlaskState, FlaskTelemetry
from telemetry_web.testing import CapturedTelemetry, capture_telemetry

from ._wsgi_support import FLASK_CONFIG, CapturedFlask, capture_flask, request_lines


def make_app(name: str, rule: str, config: dict[str, Any] | None = None) -> Flask:
    """A one-route app; ``config`` becomes its app.config["TELEMETRY"]."""
    app = Flask(name)
    app.add_url_rule(rule, "view", lambda **kwargs: f"{name}:{kwargs}")
    if config is not None:
        app.config["TELEMETRY"] = config
    return app


def extension(captured: CapturedTelemetry) -> FlaskTelemetry:
    """The Flask extension that ``capture_flask`` built, typed as such."""
    assert isinstance(captured, CapturedFlask)
    assert isinstance(captured.extension, FlaskTelemetry)
    return captured.extension


@pytest.fixture
def closing() -> Iterator[list[CapturedTelemetry]]:
    """Captures appended here are shut down after the test."""
    created: list[CapturedTelemetry] = []
    yield created
    for captured in created:
        captured.close()


def test_factory_pattern_serves_two_apps_with_one_extension(
    closing: list[CapturedTelemetry],
) -> None:
    """One ``FlaskTelemetry()`` + ``init_app`` on two apps: each app's routes, state per app."""
    captured = capture_flask(None, FLASK_CONFIG)
    closing.append(captured)
    flask_telemetry = extension(captured)
    app_a = make_app("app_a", "/a/<int:n>")
    app_b = make_app("app_b", "/b/<name>")
    flask_telemetry.init_app(app_a)
    flask_telemetry.init_app(app_b)
    flask_telemetry.init_app(app_a)  # idempotent
    assert app_a.test_client().get("/a/1", buffered=True).status_code == 200
    assert app_b.test_client().get("/b/x", buffered=True).status_code == 200
    assert (
        captured.sample("http_requests_total", method="GET", route="/a/<int:n>", status="200") == 1
    )
    assert (
        captured.sample("http_requests_total", method="GET", route="/b/<name>", status="200") == 1
    )
    state_a, state_b = app_a.extensions["telemetry_web"], app_b.extensions["telemetry_web"]
    assert isinstance(state_a, FlaskState)
    assert isinstance(state_b, FlaskState)
    assert state_a is not state_b
    assert state_a.extension is flask_telemetry
    assert state_b.extension is flask_telemetry
    assert state_a.telemetry is flask_telemetry.telemetry
    assert state_b.telemetry is flask_telemetry.telemetry
    assert app_a.wsgi_app is state_a.middleware
    kept = [v for v in vars(flask_telemetry).values() if isinstance(v, Flask | FlaskState)]
    assert kept == []  # no per-app state on the extension itself


def test_two_extensions_two_apps_record_separately(closing: list[CapturedTelemetry]) -> None:
    """Two extensions in one process each record only their own app's requests."""
    app_one, app_two = make_app("first", "/one"), make_app("second", "/two")
    first = capture_flask(app_one, {**FLASK_CONFIG, "service": "first"})
    second = capture_flask(app_two, {**FLASK_CONFIG, "service": "second"})
    closing.extend([first, second])
    assert app_one.test_client().get("/one", buffered=True).status_code == 200
    assert app_two.test_client().get("/two", buffered=True).status_code == 200
    assert [line["path"] for line in request_lines(first.logs())] == ["/one"]
    assert [line["path"] for line in request_lines(second.logs())] == ["/two"]
    assert 'service="first"' in first.metrics_text()
    assert 'route="/two"' not in first.metrics_text()


def test_another_extension_on_an_instrumented_app_is_refused(
    closing: list[CapturedTelemetry],
) -> None:
    """An app already instrumented by one extension refuses a second (it would count twice)."""
    app = make_app("app", "/x")
    closing.append(capture_flask(app, FLASK_CONFIG))
    other = capture_flask(None, FLASK_CONFIG)
    closing.append(other)
    with pytest.raises(RuntimeError, match="already instrumented"):
        extension(other).init_app(app)


def test_app_config_is_read_by_telemetry_app(closing: list[CapturedTelemetry]) -> None:
    """``FlaskTelemetry(app)`` without config= is configured from app.config["TELEMETRY"]."""
    app = make_app("configured", "/x", {**FLASK_CONFIG, "service": "from-app-config"})
    captured = capture_flask(app)
    closing.append(captured)
    assert captured.telemetry.settings.service == "from-app-config"
    app.test_client().get("/x", buffered=True)
    assert request_lines(captured.logs())[0]["service"] == "from-app-config"


def test_factory_extension_is_configured_by_the_first_init_app(
    closing: list[CapturedTelemetry],
) -> None:
    """``FlaskTelemetry()`` waits for init_app and reads that app's config, under kwargs."""
    captured = capture_flask(None, None, environment="from-kwargs")
    closing.append(captured)
    assert "not configured yet" in repr(extension(captured))
    app = make_app("factory", "/x", {**FLASK_CONFIG, "service": "from-app-config"})
    extension(captured).init_app(app)
    settings = captured.telemetry.settings
    assert (settings.service, settings.environment) == ("from-app-config", "from-kwargs")


def test_config_argument_wins_over_app_config(closing: list[CapturedTelemetry]) -> None:
    """config= in code is used as given; app.config["TELEMETRY"] is then not read (no warning)."""
    app = make_app("explicit", "/x", {**FLASK_CONFIG, "service": "from-app-config"})
    captured = capture_flask(app, {**FLASK_CONFIG, "service": "from-code"})
    closing.append(captured)
    assert captured.telemetry.settings.service == "from-code"


def test_environment_wins_over_app_config(
    closing: list[CapturedTelemetry], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As everywhere, TELEMETRY_* / OTEL_* variables win over app.config["TELEMETRY"]."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    app = make_app("env", "/x", {**FLASK_CONFIG, "service": "from-app-config"})
    captured = capture_flask(app, use_env=True)
    closing.append(captured)
    assert captured.telemetry.settings.service == "from-env"


def test_use_before_init_app_ignores_later_app_config_with_a_warning(
    closing: list[CapturedTelemetry],
) -> None:
    """Used before init_app (get_logger at import), it is built from code and environment;
    the app.config["TELEMETRY"] it meets later is ignored with a RuntimeWarning."""
    captured = capture_flask(None, None, service="early")
    closing.append(captured)
    captured.telemetry.get_logger("app").info("at import time")
    app = make_app("late", "/x", {**FLASK_CONFIG, "service": "from-app-config"})
    with pytest.warns(RuntimeWarning, match=r"app.config\['TELEMETRY'\] of 'late' is ignored"):
        extension(captured).init_app(app)
    assert captured.telemetry.settings.service == "early"
    assert app.test_client().get("/x", buffered=True).status_code == 200
    assert request_lines(captured.logs())[0]["service"] == "early"


def test_second_app_with_other_config_warns(closing: list[CapturedTelemetry]) -> None:
    """A second app whose app.config["TELEMETRY"] differs from the first's gets a warning."""
    captured = capture_flask(None)
    closing.append(captured)
    extension(captured).init_app(make_app("one", "/x", {**FLASK_CONFIG, "service": "one"}))
    extension(captured).init_app(make_app("same", "/y", {**FLASK_CONFIG, "service": "one"}))
    with pytest.warns(RuntimeWarning, match="of 'two' is ignored"):
        extension(captured).init_app(make_app("two", "/z", {**FLASK_CONFIG, "service": "two"}))


def test_lazy_build_happens_once_across_threads(closing: list[CapturedTelemetry]) -> None:
    """Threads using a not-yet-initialised extension at once all get the same single build."""
    captured = capture_flask(None)
    closing.append(captured)
    with ThreadPoolExecutor(max_workers=8) as pool:
        registries = set(pool.map(lambda _: id(captured.telemetry.registry), range(32)))
    assert len(registries) == 1


def test_given_engine_is_used_and_not_rebuilt(closing: list[CapturedTelemetry]) -> None:
    """``FlaskTelemetry(app, telemetry=engine)`` records into that engine, ignoring app.config."""
    captured = capture_telemetry(FLASK_CONFIG, service="given")
    closing.append(captured)
    app = make_app("given", "/x", {**FLASK_CONFIG, "service": "from-app-config"})
    flask_telemetry = FlaskTelemetry(app, telemetry=captured.telemetry)
    assert flask_telemetry.telemetry is captured.telemetry
    assert app.extensions["telemetry_web"].telemetry is captured.telemetry
    assert app.test_client().get("/x", buffered=True).status_code == 200
    assert request_lines(captured.logs())[0]["service"] == "given"


@pytest.mark.parametrize(
    "kwargs",
    [{"telemetry": object(), "service": "both"}, {"servce": "misspelt"}],
    ids=["engine-and-settings", "unknown-setting"],
)
def test_bad_arguments_fail_at_construction(kwargs: dict[str, Any]) -> None:
    """``telemetry=`` with settings, or a setting the engine does not take, is a TypeError."""
    with pytest.raises(TypeError):
        FlaskTelemetry(**kwargs)


def test_former_telemetry_name_warns_and_keeps_working(closing: list[CapturedTelemetry]) -> None:
    """``telemetry_web.flask.Telemetry`` warns (DeprecationWarning, at the caller) and keeps its
    old signature, ``init_app`` and the engine's attributes."""
    import telemetry_web.flask

    with pytest.warns(DeprecationWarning, match="FlaskTelemetry") as caught:
        legacy = telemetry_web.flask.Telemetry
    assert len(caught) == 1
    assert caught[0].filename == __file__
    app = make_app("legacy", "/x")
    # No local store: it would be the working directory's (the repository's, under pytest).
    config = {**FLASK_CONFIG, "store": {"enabled": False}}
    old = legacy(app, config, service="legacy", use_env=False)
    closing.append(CapturedFlask(old, None, None))
    assert isinstance(old, FlaskTelemetry)
    assert old.settings.service == "legacy"
    assert old.registry is old.telemetry.registry
    old.get_logger("app").info("still works")
    assert app.test_client().get("/x", buffered=True).status_code == 200
    assert app.extensions["telemetry_web"].extension is old


def test_extension_owns_an_engine_rather_than_being_one() -> None:
    """FlaskTelemetry is a small integration: the engine's API is on ``.telemetry`` only."""
    assert not issubclass(FlaskTelemetry, telemetry_web.Telemetry)
    assert not hasattr(FlaskTelemetry, "get_logger")


def test_missing_flask_names_the_extra() -> None:
    """Without Flask, importing telemetry_web.flask raises MissingExtraError naming the extra."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["flask"] = None
        from telemetry_web import MissingExtraError
        try:
            import telemetry_web.flask
        except MissingExtraError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        else:
            print("imported")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "telemetry_web.flask needs 'flask', which is not installed: "
        "pip install 'telemetry-web[flask]'"
    )
