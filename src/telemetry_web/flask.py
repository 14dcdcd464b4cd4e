"""The Flask extension: ``from telemetry_web.flask import Telemetry``.

    telemetry = Telemetry(app, service="orders")     # or, with an application factory:
    telemetry = Telemetry()                          # extensions.py
    telemetry.init_app(app)                          # create_app()

``Telemetry`` is a :class:`telemetry_web.Telemetry` (same keyword arguments, same API:
``get_logger``, ``create_counter``, …) whose first positional argument is the optional app.
``init_app`` wraps ``app.wsgi_app`` in :class:`~telemetry_web.wsgi.TelemetryWSGIMiddleware` and
keeps everything per app in ``app.extensions["telemetry_web"]``, so one extension can serve
several apps and several extensions can live in one process.

Configuration, lowest precedence first: ``config=`` (a YAML path, a mapping or settings) or,
when none is given, ``app.config["TELEMETRY"]`` (same schema); then ``service=``,
``environment=``, ``labels=``; then the environment, as always. ``Telemetry(app)`` reads
``app.config`` at once. ``Telemetry()`` without ``config=`` is built by the first ``init_app``,
from that app's ``app.config["TELEMETRY"]``; used before any ``init_app`` (``get_logger`` at
import time), it is built from code and the environment only, and a later
``app.config["TELEMETRY"]`` is ignored with a ``RuntimeWarning`` (as is a second app's that
differs from the first's): one configuration, one Telemetry.

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
and debug mode). Streamed responses (generators,
``stream_with_context``) are timed to their last chunk.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._engine import Telemetry as _Telemetry
from ..errors import MissingExtraError

try:
    from flask import Flask, has_request_context, request
    from flask.signals import got_request_exception
    from werkzeug.exceptions import MethodNotAllowed
except ModuleNotFoundError:
    raise MissingExtraError("telemetry_web.flask", "flask", "flask") from None

from .wsgi import TelemetryWSGIMiddleware, note_exception

if TYPE_CHECKING:
    import os

    from opentelemetry.sdk.trace.export import SpanExporter
    from werkzeug.routing import MapAdapter

    from ..config import TelemetrySettings
    from ..logging import LogSink

__all__ = ["FlaskState", "Telemetry"]

EXTENSION_KEY = "telemetry_web"
_CACHE_SIZE = 4096
_DEFERRED, _BUILDING, _BUILT = "deferred", "building", "built"


class Telemetry(_Telemetry):
    """Telemetry for Flask apps: ``Telemetry(app)`` or ``Telemetry()`` + ``init_app(app)``.

    Args:
        app: the Flask app to instrument now (or later with :meth:`init_app`).
        config: a YAML path, a mapping or settings; when omitted, ``app.config["TELEMETRY"]``
            of the first app (see the module documentation for the precedence).
        service, environment, labels, span_exporters, log_sinks, use_env, set_global,
        capture_stdlib_logging: as for :class:`telemetry_web.Telemetry`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        config: str | os.PathLike[str] | Mapping[str, Any] | TelemetrySettings | None = None,
        *,
        service: str | None = None,
        environment: str | None = None,
        labels: Mapping[str, str] | None = None,
        span_exporters: Sequence[SpanExporter] = (),
        log_sinks: Sequence[LogSink] = (),
        use_env: bool = True,
        set_global: bool = True,
        capture_stdlib_logging: bool = True,
    ) -> None:
        self._flask_lock = threading.RLock()
        self._flask_state = _DEFERRED
        self._flask_explicit = config is not None
        self._flask_config: Any = config
        self._flask_source = "code and the environment"
        self._flask_kwargs: dict[str, Any] = {
            "service": service, "environment": environment, "labels": labels,
            "span_exporters": span_exporters, "log_sinks": log_sinks, "use_env": use_env,
            "set_global": set_global, "capture_stdlib_logging": capture_stdlib_logging,
        }  # fmt: skip
        if config is not None or app is not None:
            self._flask_build(app)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Instrument ``app``: wrap its ``wsgi_app``, resolve its routes, observe its errors.

        Raises:
            RuntimeError: ``app`` is already instrumented by another Telemetry.
        """
        existing = app.extensions.get(EXTENSION_KEY)
        if existing is not None:
            if existing.telemetry is self:
                return
            raise RuntimeError(
                f"Flask app {app.name!r} is already instrumented by another telemetry_web "
                "Telemetry; use one per app"
            )
        self._flask_build(app)
        self._check_ignored_config(app)
        state = FlaskState(app, self)
        state.middleware = TelemetryWSGIMiddleware(
            app.wsgi_app, telemetry=self, route_resolver=state.resolve_route
        )
        app.wsgi_app = state.middleware  # type: ignore[method-assign]
        got_request_exception.connect(_unhandled_exception, app)
        app.extensions[EXTENSION_KEY] = state

    # --- building from the first app's configuration -----------------------------------------

    def _flask_build(self, app: Flask | None) -> None:
        with self._flask_lock:
            if self._flask_state != _DEFERRED:
                return
            config = self._flask_config
            if config is None and app is not None:
                config = app.config.get("TELEMETRY")
                if config is not None:
                    self._flask_source = f"app.config['TELEMETRY'] of {app.name!r}"
            elif config is not None:
                self._flask_source = "config="
            self._flask_config = config
            self._flask_state = _BUILDING
            try:
                super().__init__(config, **self._flask_kwargs)
            except BaseException:
                self._flask_state = _DEFERRED
                raise
            self._flask_state = _BUILT

    def _check_ignored_config(self, app: Flask) -> None:
        ignored = app.config.get("TELEMETRY")
        if ignored is None or self._flask_explicit:
            return
        used = self._flask_config
        if ignored is used or ignored == used:
            return
        warnings.warn(
            f"app.config['TELEMETRY'] of {app.name!r} is ignored: this Telemetry was already "
            f"configured from {self._flask_source}; create one Telemetry per configuration "
            "(or call init_app before using it)",
            RuntimeWarning,
            stacklevel=3,
        )

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            """Used before any ``init_app``: build from code and the environment, then answer."""
            if name.startswith(("__", "_flask_")):
                raise AttributeError(name)
            lock = self.__dict__.get("_flask_lock")
            if lock is None:
                raise AttributeError(name)
            with lock:
                if self.__dict__.get("_flask_state") == _DEFERRED:
                    self._flask_build(None)
            return object.__getattribute__(self, name)

    def __repr__(self) -> str:
        if self._flask_state != _BUILT:
            return "<Telemetry (Flask) not configured yet: waiting for init_app>"
        return super().__repr__()


class FlaskState:
    """What one app keeps in ``app.extensions["telemetry_web"]``.

    Attributes:
        telemetry: the extension recording this app's requests.
        middleware: the WSGI middleware wrapping ``app.wsgi_app``.
    """

    def __init__(self, app: Flask, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry
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
