"""The launcher's post-import hooks: each framework gets its adapter, each client library its
instrumentor, when the app imports it.

- Starlette / FastAPI: ``build_middleware_stack`` puts :class:`TelemetryMiddleware` first in
  ``user_middleware`` (the outermost user middleware) unless the app lists it already.
- Flask: the first ``Flask.__call__`` of each app wraps its ``wsgi_app`` as ``init_app`` does,
  unless the app was instrumented by hand (``app.extensions["telemetry_web"]``).
- Django: when the settings are loaded, the middleware goes first in ``MIDDLEWARE`` (unless
  present); once the app registry is ready, the project's Telemetry is built and its health
  checks started, as the ``telemetry_web.django`` app's ``ready()`` does. ``INSTALLED_APPS`` is
  left alone: apps such as Wagtail derive values the user sees from it (static URL hashes).
- uvicorn, hypercorn, granian, daphne: the app they serve is wrapped whole (:mod:`._servers`);
  the Starlette/FastAPI hooks then add nothing inside it.
- gunicorn: the master imports :mod:`telemetry_web.gunicorn` (multiprocess directory) and gets
  its ``child_exit``/``on_exit`` chained before any configured ones; a WSGI app that no framework
  hook covers is wrapped in :class:`TelemetryWSGIMiddleware` when gunicorn loads it.
- SQLAlchemy, Redis, httpx, requests: their instrumentor's ``instrument()``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

import wrapt

from . import _process
from ._access import take_over_access_logs
from ._notice import claim
from ._process import process_telemetry, safely, when_telemetry_exists
from ._servers import SERVER_HOOKS, service_hint, wrap_wsgi_app

__all__ = ["register"]

_MARK = "_telemetry_web_launched"
_DJANGO_MIDDLEWARE = "telemetry_web.django.DjangoTelemetryMiddleware"
_DJANGO_APP = "telemetry_web.django"
_django_ready_done = False
_flask_lock = threading.Lock()
_wrapped: set[tuple[type, str]] = set()  # (class, method) this process has wrapped


def register(disabled: set[str]) -> list[str]:
    """Register the hooks of every instrumentation not in ``disabled``; returns their names."""
    hooks: dict[str, tuple[str, Callable[[Any], None]]] = {
        "starlette": ("starlette.applications", _hook_starlette),
        "fastapi": ("fastapi.applications", _hook_fastapi),
        "flask": ("flask.app", _hook_flask),
        "django": ("django.conf", _hook_django),
        "gunicorn": ("gunicorn.app.base", _hook_gunicorn),
        "wsgi": ("gunicorn.app.wsgiapp", _hook_gunicorn_app),
        "sqlalchemy": ("sqlalchemy", _instrumentor("sqlalchemy", "SQLAlchemyInstrumentor")),
        "redis": ("redis", _instrumentor("redis", "RedisInstrumentor")),
        "httpx": ("httpx", _instrumentor("httpx", "HttpxInstrumentor")),
        "requests": ("requests", _instrumentor("requests", "RequestsInstrumentor")),
    }
    registered = []
    for name, (module, hook) in hooks.items():
        if name in disabled:
            continue
        wrapt.register_post_import_hook(_guarded(name, hook), module)
        registered.append(name)
    for name, server_hooks in SERVER_HOOKS.items():
        if name in disabled:
            continue
        for module, hook in server_hooks:
            wrapt.register_post_import_hook(_guarded(name, hook), module)
        registered.append(name)
    # An app that builds its own Telemetry: instrumentations waiting for one use it.
    wrapt.register_post_import_hook(_hook_engine, "telemetry_web._engine")
    registered.extend(_register_third_party(disabled, {*hooks, *SERVER_HOOKS}))
    return registered


def _hook_engine(module: Any) -> None:
    def created(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> None:
        wrapped(*args, **kwargs)
        safely("access-log", take_over_access_logs, instance)
        safely("launcher", _process.telemetry_created, instance)

    _wrap_once(module, "Telemetry.__init__", created)


#: Entry-point group through which other distributions add instrumentors to the launcher:
#: ``[project.entry-points."telemetry_web.instrumentors"] mylib = "mylib_tw:MyInstrumentor"``.
#: The value is called with ``telemetry=`` and must have ``instrument()``; it runs once the
#: process Telemetry exists (when the app's framework is set up), unless disabled by name.
ENTRY_POINT_GROUP = "telemetry_web.instrumentors"


def _register_third_party(disabled: set[str], builtin: set[str]) -> list[str]:
    from importlib.metadata import entry_points

    names = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in disabled or entry.name in builtin:
            continue

        def apply(telemetry: Any, entry: Any = entry) -> None:
            factory = entry.load()
            factory(telemetry=telemetry).instrument()

        apply.__name__ = entry.name
        when_telemetry_exists(entry.name, apply)
        names.append(entry.name)
    return names


#: Hooks whose firing means the process is meant to serve HTTP (see :mod:`._notice`).
_SERVING = frozenset({"starlette", "fastapi", "flask", "django", "gunicorn", "wsgi"})


def _guarded(name: str, hook: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(module: Any) -> None:
        if name in _SERVING:
            claim(name)
        safely(name, hook, module)

    return run


def _wrap_once(module: Any, name: str, wrapper: Callable[..., Any]) -> None:
    owner, _, attribute = name.rpartition(".")
    target = getattr(module, owner)
    key = (target, attribute)
    if attribute not in target.__dict__ or key in _wrapped:
        return
    wrapt.wrap_function_wrapper(module, name, wrapper)
    _wrapped.add(key)


# --- Starlette / FastAPI ---------------------------------------------------------------------


def _hook_starlette(module: Any) -> None:
    _process.prepare_multiprocess()
    from .. import asgi  # noqa: F401  (its own build_middleware_stack observer: inner)

    _wrap_once(module, "Starlette.build_middleware_stack", _add_asgi_middleware("starlette"))


def _hook_fastapi(module: Any) -> None:
    _process.prepare_multiprocess()
    from .. import asgi  # noqa: F401

    _wrap_once(module, "FastAPI.build_middleware_stack", _add_asgi_middleware("fastapi"))


def _add_asgi_middleware(name: str) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        safely(name, _insert_asgi_middleware, instance)
        return wrapped(*args, **kwargs)

    return wrapper


def _insert_asgi_middleware(app: Any) -> None:
    from starlette.middleware import Middleware

    from ..asgi import TelemetryMiddleware

    if id(app) in _process.covered_apps:
        return  # its server wraps the whole app
    user_middleware = app.user_middleware
    for middleware in user_middleware:
        cls = getattr(middleware, "cls", None)
        if isinstance(cls, type) and issubclass(cls, TelemetryMiddleware):
            return  # added by hand, or by us for an earlier build
    telemetry = process_telemetry(service_hint())
    middleware_class: Any = TelemetryMiddleware
    user_middleware.insert(0, Middleware(middleware_class, telemetry=telemetry))


# --- Flask -----------------------------------------------------------------------------------


def _hook_flask(module: Any) -> None:
    _wrap_once(module, "Flask.__call__", _flask_call)


def _flask_call(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not instance.__dict__.get(_MARK):
        with _flask_lock:
            if not instance.__dict__.get(_MARK):
                instance.__dict__[_MARK] = True
                safely("flask", _instrument_flask, instance)
    return wrapped(*args, **kwargs)


def _instrument_flask(app: Any) -> None:
    _process.prepare_multiprocess()
    from ..flask import EXTENSION_KEY, instrument_app

    if EXTENSION_KEY in app.extensions:
        return  # FlaskTelemetry(app) / init_app by hand
    package = app.import_name.split(".")[0]
    instrument_app(app, process_telemetry(package if package != "__main__" else service_hint()))


# --- Django ----------------------------------------------------------------------------------


def _hook_django(module: Any) -> None:
    _wrap_once(module, "LazySettings._setup", _django_settings_loaded)
    _wrap_once(module, "LazySettings.configure", _django_settings_loaded)
    wrapt.register_post_import_hook(_guarded("django", _hook_django_apps), "django.apps.registry")


def _hook_django_apps(module: Any) -> None:
    _wrap_once(module, "Apps.populate", _django_apps_populated)


def _django_apps_populated(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    if _process.django_active and instance.ready:
        safely("django", _django_ready, instance)
    return result


def _django_ready(apps: Any) -> None:
    """What ``TelemetryWebConfig.ready()`` does, for a project that does not install the app."""
    global _django_ready_done
    if _django_ready_done or apps.is_installed(_DJANGO_APP):
        return
    _django_ready_done = True
    from ..django import get_telemetry

    get_telemetry().start_health_checks(thread=True)


def _django_settings_loaded(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    safely("django", _instrument_django, instance)
    return result


def _instrument_django(settings: Any) -> None:
    _process.prepare_multiprocess()  # under uvicorn/hypercorn workers, before the engine
    from ..config import load_settings

    config = getattr(settings, "TELEMETRY", None)
    # An invalid configuration would stop Django at AppConfig.ready(): check it here, where a
    # failure only leaves the project uninstrumented (and is logged).
    load_settings(config if isinstance(config, str | dict) else None)
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    if not any(str(entry).startswith("telemetry_web.django") for entry in middleware):
        settings.MIDDLEWARE = [_DJANGO_MIDDLEWARE, *middleware]
    _process.django_active = True


# --- gunicorn --------------------------------------------------------------------------------


def _hook_gunicorn(module: Any) -> None:
    _wrap_once(module, "BaseApplication.do_load_config", _gunicorn_config_loaded)


def _gunicorn_config_loaded(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    if getattr(instance, "cfg", None) is not None:
        safely("gunicorn", _configure_gunicorn, instance.cfg)
    return result


def _configure_gunicorn(cfg: Any) -> None:
    from .. import gunicorn as hooks  # the master's multiprocess directory, before any worker

    previous_exit = cfg.child_exit
    if previous_exit is not hooks.child_exit and not getattr(previous_exit, _MARK, False):

        def child_exit(server: Any, worker: Any) -> None:
            try:
                hooks.child_exit(server, worker)
            finally:
                previous_exit(server, worker)

        setattr(child_exit, _MARK, True)
        cfg.set("child_exit", child_exit)
    previous_on_exit = cfg.on_exit
    if previous_on_exit is not hooks.on_exit and not getattr(previous_on_exit, _MARK, False):

        def on_exit(server: Any) -> None:
            try:
                previous_on_exit(server)
            finally:
                hooks.on_exit(server)

        setattr(on_exit, _MARK, True)
        cfg.set("on_exit", on_exit)


def _hook_gunicorn_app(module: Any) -> None:
    _wrap_once(module, "WSGIApplication.load_wsgiapp", _gunicorn_app_loaded)


def _gunicorn_app_loaded(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    app = wrapped(*args, **kwargs)
    worker_class = str(getattr(getattr(instance, "cfg", None), "worker_class_str", ""))
    if "uvicorn" in worker_class.lower() or "asgi" in worker_class.lower():
        return app  # an ASGI app: the Starlette/FastAPI hooks cover it
    wrapped_app = safely("wsgi", wrap_wsgi_app, app)
    return app if wrapped_app is None else wrapped_app


# --- client libraries ------------------------------------------------------------------------


def _instrumentor(name: str, class_name: str) -> Callable[[Any], None]:
    def hook(_module: Any) -> None:
        def apply(telemetry: Any) -> None:
            import importlib

            instrumentors = importlib.import_module("telemetry_web.instrumentors")
            with warnings.catch_warnings():  # already instrumented by hand: nothing to say
                warnings.simplefilter("ignore")
                getattr(instrumentors, class_name)(telemetry=telemetry).instrument()

        apply.__name__ = name
        when_telemetry_exists(name, apply)

    return hook
