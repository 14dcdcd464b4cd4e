"""The Flask extension: ``from telemetry_web.flask import FlaskTelemetry``.

    flask_telemetry = FlaskTelemetry(app, service="orders")   # or, with an application factory:
    flask_telemetry = FlaskTelemetry()                        # extensions.py
    flask_telemetry.init_app(app)                             # create_app()
    log = flask_telemetry.telemetry.get_logger("orders")

``FlaskTelemetry`` is a small integration that owns an engine rather than being one:
``.telemetry`` is the :class:`telemetry_web.Telemetry` it records into, either given
(``FlaskTelemetry(app, telemetry=telemetry)``) or built from the keyword arguments, which are
:class:`telemetry_web.Telemetry`'s (``config=``, ``service=``, ``environment=``, …).
``init_app`` wraps ``app.wsgi_app`` in :class:`~telemetry_web.wsgi.TelemetryWSGIMiddleware` and
keeps everything per app in ``app.extensions["telemetry_web"]`` (a :class:`FlaskState`), so one
extension can serve several apps and several extensions can live in one process.

Configuration of an engine it builds, lowest precedence first: ``config=`` (a YAML path, a
mapping or settings) or, when none is given, ``app.config["TELEMETRY"]`` (same schema); then
``service=``, ``environment=``, ``labels=``; then the environment, as always.
``FlaskTelemetry(app)`` reads ``app.config`` at once. ``FlaskTelemetry()`` without ``config=``
builds its engine at the first ``init_app``, from that app's ``app.config["TELEMETRY"]``; if
``.telemetry`` is used before any ``init_app`` (``get_logger`` at import time), the engine is
built from code and the environment only, and a later ``app.config["TELEMETRY"]`` is ignored
with a ``RuntimeWarning`` (as is a second app's that differs from the first's): one
configuration, one engine.

Routes: the label is Flask's rule template (``/api/users/<int:user_id>``, blueprint prefixes
included), matched before the view runs with the app's own URL adapter and cached per (method,
host, path). A request no rule matches is ``<unmatched>``, and so is a strict-slash redirect;
a 405 is labelled with the rule its path matched, as in every other adapter (methods outside the
standard set are ``_OTHER``, so probing methods cannot add series).

Middleware: ``init_app`` wraps ``app.wsgi_app`` as it is then. Apply WSGI middleware that
rewrites the request (``ProxyFix`` for the client address and scheme, a path prefix) after
``init_app``, so that it runs first and the recorded request is the rewritten one.

Errors: an exception turned into a response by an ``errorhandler`` is recorded with the status
actually sent (a handler answering 422 counts a 422; a 5xx marks the span and the log line as
errors), like an exception handler of any other framework: the exception itself was handled by
the app and is not recorded. An unhandled exception is a 500 with the exception on the span and
the log line, whether Flask renders the 500 or propagates it (``PROPAGATE_EXCEPTIONS``, testing
and debug mode). Streamed responses (generators, ``stream_with_context``) are timed to their
last chunk.

``FlaskTelemetry`` replaces ``telemetry_web.flask.Telemetry``, a subclass of the engine; that
name still works (with its old signature ``Telemetry(app, config, **settings)`` and the
engine's attributes reachable on it) and emits a ``DeprecationWarning``.
"""

from __future__ import annotations

import inspect
import threading
import warnings
from typing import TYPE_CHECKING, Any

from . import _engine
from .errors import MissingExtraError

try:
    from flask import Flask, has_request_context, request
    from flask.signals import got_request_exception
    from werkzeug.exceptions import MethodNotAllowed
except ModuleNotFoundError:
    raise MissingExtraError("telemetry_web.flask", "flask", "flask") from None

from .wsgi import TelemetryWSGIMiddleware, note_exception

if TYPE_CHECKING:
    from werkzeug.routing import MapAdapter

    import telemetry_web

__all__ = ["FlaskState", "FlaskTelemetry"]

EXTENSION_KEY = "telemetry_web"
_CACHE_SIZE = 4096


class FlaskTelemetry:
    """Telemetry for Flask apps: ``FlaskTelemetry(app)`` or ``FlaskTelemetry()`` + ``init_app``.

    Args:
        app: the Flask app to instrument now (or later with :meth:`init_app`).
        telemetry: the engine to record into; when omitted, one is built from ``settings``.
        settings: :class:`telemetry_web.Telemetry`'s keyword arguments (``config``, ``service``,
            ``environment``, ``labels``, …); without ``config``, the first app's
            ``app.config["TELEMETRY"]`` is used (see the module documentation).

    Raises:
        TypeError: ``telemetry=`` together with settings, or an unknown setting.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        telemetry: telemetry_web.Telemetry | None = None,
        **settings: Any,
    ) -> None:
        if telemetry is not None and settings:
            raise TypeError(
                "FlaskTelemetry takes telemetry= or the settings to build one, not both "
                f"(got telemetry= and {', '.join(sorted(settings))})"
            )
        inspect.signature(_engine.Telemetry).bind(
            **settings
        )  # a misspelt setting fails here, not later
        self._lock = threading.RLock()
        self._engine = telemetry
        self._settings = settings
        self._config: Any = settings.get("config")
        self._explicit = telemetry is not None or self._config is not None
        self._source = "telemetry=" if telemetry is not None else "code and the environment"
        if app is not None:
            self.init_app(app)
        elif self._config is not None:
            self._build(None)

    @property
    def telemetry(self) -> telemetry_web.Telemetry:
        """The engine this extension records into (given, or built on first need)."""
        engine = self._engine
        return engine if engine is not None else self._build(None)

    def init_app(self, app: Flask) -> None:
        """Instrument ``app``: wrap its ``wsgi_app``, resolve its routes, observe its errors.

        Raises:
            RuntimeError: ``app`` is already instrumented by another extension.
        """
        existing = app.extensions.get(EXTENSION_KEY)
        if existing is not None:
            if existing.extension is self:
                return
            raise RuntimeError(
                f"Flask app {app.name!r} is already instrumented by another telemetry_web "
                "FlaskTelemetry; use one per app"
            )
        telemetry = self._build(app)
        self._check_ignored_config(app)
        instrument_app(app, telemetry, extension=self)

    def _build(self, app: Flask | None) -> telemetry_web.Telemetry:
        """The engine, built once: from ``config=``, else the first app's configuration."""
        with self._lock:
            if self._engine is not None:
                return self._engine
            config = self._config
            if config is None and app is not None:
                config = app.config.get("TELEMETRY")
                if config is not None:
                    self._source = f"app.config['TELEMETRY'] of {app.name!r}"
            elif config is not None:
                self._source = "config="
            self._config = config
            self._engine = _engine.Telemetry(**{**self._settings, "config": config})
            return self._engine

    def _check_ignored_config(self, app: Flask) -> None:
        ignored = app.config.get("TELEMETRY")
        if ignored is None or self._explicit:
            return
        used = self._config
        if ignored is used or ignored == used:
            return
        warnings.warn(
            f"app.config['TELEMETRY'] of {app.name!r} is ignored: this FlaskTelemetry was "
            f"already configured from {self._source}; create one FlaskTelemetry per "
            "configuration (or call init_app before using its telemetry)",
            RuntimeWarning,
            stacklevel=3,
        )

    def __repr__(self) -> str:
        if self._engine is None:
            return "<FlaskTelemetry not configured yet: waiting for init_app>"
        return f"<FlaskTelemetry telemetry={self._engine!r}>"


def instrument_app(
    app: Flask, telemetry: telemetry_web.Telemetry, *, extension: FlaskTelemetry | None = None
) -> FlaskState:
    """Wrap ``app.wsgi_app`` and keep the app's state in ``app.extensions`` (also the launcher's
    way in, with no extension)."""
    state = FlaskState(app, telemetry, extension)
    state.middleware = TelemetryWSGIMiddleware(
        app.wsgi_app, telemetry=telemetry, route_resolver=state.resolve_route
    )
    app.wsgi_app = state.middleware  # type: ignore[method-assign]
    got_request_exception.connect(_unhandled_exception, app)
    app.extensions[EXTENSION_KEY] = state
    return state


class FlaskState:
    """What one app keeps in ``app.extensions["telemetry_web"]``.

    Attributes:
        telemetry: the engine recording this app's requests.
        extension: the :class:`FlaskTelemetry` that instrumented the app (None: the launcher).
        middleware: the WSGI middleware wrapping ``app.wsgi_app``.
    """

    def __init__(
        self,
        app: Flask,
        telemetry: telemetry_web.Telemetry,
        extension: FlaskTelemetry | None = None,
    ) -> None:
        self.app = app
        self.telemetry = telemetry
        self.extension = extension
        self.middleware: TelemetryWSGIMiddleware | None = None
        self._routes: dict[tuple[str, str, str], str | None] = {}

    def resolve_route(self, environ: dict[str, Any]) -> str | None:
        """The rule template the app will dispatch ``environ`` to, or None; cached, bounded."""
        key = (
            environ.get("REQUEST_METHOD", ""),
            environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""),
            environ.get("PATH_INFO", ""),
        )
        try:
            return self._routes[key]
        except KeyError:
            pass
        template: str | None = None
        app = self.app
        try:
            adapter: MapAdapter | None = app.create_url_adapter(
                app.request_class(environ, populate_request=False, shallow=True)
            )
            if adapter is not None:
                template = _rule_template(adapter)
        except Exception:  # NotFound, RequestRedirect, an untrusted host…
            template = None
        if len(self._routes) >= _CACHE_SIZE:
            self._routes.clear()
        self._routes[key] = template
        return template


def _rule_template(adapter: MapAdapter) -> str:
    """The matched rule; for a 405, the rule the path matched under an allowed method (as the
    other adapters label it: a route's 405s belong to that route)."""
    try:
        rule, _args = adapter.match(return_rule=True)
    except MethodNotAllowed as exc:
        if not exc.valid_methods:
            raise
        allowed: str = next(iter(exc.valid_methods))
        rule, _args = adapter.match(None, allowed, True)
    return str(rule.rule)


def _unhandled_exception(sender: Flask, exception: BaseException, **_extra: Any) -> None:
    """``got_request_exception``: the exception behind the 500 Flask renders (or propagates)."""
    if has_request_context():
        note_exception(request.environ, exception)


class _DeprecatedTelemetry(FlaskTelemetry):
    """The extension under its old name, ``telemetry_web.flask.Telemetry``, with its old
    signature (``config`` second) and the engine's attributes reachable on it."""

    def __init__(self, app: Flask | None = None, config: Any = None, **settings: Any) -> None:
        if config is not None:
            settings["config"] = config
        super().__init__(app, **settings)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # ours (not set yet) and dunders: never the engine's
            raise AttributeError(name)
        return getattr(self.telemetry, name)

    def __repr__(self) -> str:
        if self._engine is None:
            return "<Telemetry (Flask) not configured yet: waiting for init_app>"
        return repr(self._engine)


if TYPE_CHECKING:
    Telemetry = _DeprecatedTelemetry  # what type checkers see of the former name


def __getattr__(name: str) -> Any:
    if name == "Telemetry":
        warnings.warn(
            "telemetry_web.flask.Telemetry is deprecated: use "
            "telemetry_web.flask.FlaskTelemetry (its .telemetry is the engine)",
            DeprecationWarning,
            stacklevel=2,
        )
        return _DeprecatedTelemetry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
