"""Server hooks: the application a server is about to serve gets the middleware, whatever built it.

- uvicorn: after ``Config.load`` (import string, ``--factory``, ``--workers`` and ``--reload``
  children, gunicorn's uvicorn workers, and ``uvicorn.run(app)`` called by an app's own CLI),
  the app below uvicorn's own proxy-headers and message-logger middleware is wrapped;
- hypercorn: the app given to its ASGI/WSGI wrappers;
- granian: the callback of its ASGI workers (requests and lifespan), and of its WSGI workers;
- daphne: the ``application`` of its ``Server``.

Wrapping the whole application works for a Starlette or FastAPI app, Quart, Litestar or a bare
ASGI callable alike, and also sees the 500 page Starlette's error middleware renders. Not wrapped:
an app that has :class:`~telemetry_web.TelemetryMiddleware` already (added by hand), a Django
handler (the Django hook puts the middleware into the settings, where Django's resolver names
the route), and an app of a framework disabled by name. A WSGI app goes through the same rule as
under gunicorn (:func:`wrap_wsgi_app`).
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

import wrapt

from . import _process, disabled_instrumentations
from ._notice import claim, say_once
from ._process import process_telemetry, safely

__all__ = ["SERVER_HOOKS", "instrument_asgi_app", "service_hint", "wrap_wsgi_app"]

_lock = threading.Lock()
# id(app) -> (app, what is served instead): the lifespan and the requests of one app share one
# middleware, and a server that loads the same app twice wraps it once.
_served: dict[int, tuple[Any, Any]] = {}
# uvicorn's own wrappers around the app it loaded (kept outside ours: the proxy headers
# middleware sets the client address we record).
_UVICORN_OUTER = ("ProxyHeadersMiddleware", "MessageLoggerMiddleware")


def instrument_asgi_app(server: str, app: Any, import_string: str | None = None) -> Any:
    """``app`` inside a TelemetryMiddleware (one per app object), or ``app`` unchanged."""
    with _lock:
        cached = _served.get(id(app))
        if cached is not None and cached[0] is app:
            return cached[1]
    result = safely(server, _wrap_asgi, app, import_string)
    served = app if result is None else result
    with _lock:
        _served[id(app)] = (app, served)
    return served


def _wrap_asgi(app: Any, import_string: str | None) -> Any:
    chain = list(_app_chain(app))
    frameworks = {_top_module(link) for link in chain}
    if "django" in frameworks:
        return app  # the Django hook covers it through the settings
    if frameworks & disabled_instrumentations():
        return app
    _process.prepare_multiprocess()
    from ..asgi import TelemetryMiddleware

    if any(_has_middleware(link, TelemetryMiddleware) for link in chain):
        return app  # instrumented by hand
    telemetry = process_telemetry(service_hint(import_string))
    for link in chain:  # the Starlette/FastAPI hooks must not add a second copy inside
        _process.covered_apps.add(id(link))
    middleware: Any = TelemetryMiddleware
    return middleware(app, telemetry=telemetry)


def _app_chain(app: Any) -> Any:
    """``app`` and the apps it wraps (``.app`` of middleware), outermost first."""
    seen = 0
    while app is not None and seen < 32:
        yield app
        app = getattr(app, "app", None) if not inspect.isroutine(app) else None
        seen += 1


def _top_module(app: Any) -> str:
    module = app.__module__ if inspect.isroutine(app) else type(app).__module__
    return str(module or "").split(".")[0]


def _has_middleware(app: Any, middleware_class: type) -> bool:
    if isinstance(app, middleware_class):
        return True
    for middleware in getattr(app, "user_middleware", None) or ():
        cls = getattr(middleware, "cls", None)
        if isinstance(cls, type) and issubclass(cls, middleware_class):
            return True
    return False


# Trailing module names that say nothing about the app ("mysite.asgi" names "mysite").
_GENERIC = frozenset({"main", "app", "apps", "asgi", "wsgi", "server", "application", "api"})


def service_hint(import_string: str | None = None) -> str | None:
    """A service name for an app nothing named: the package of its import string
    (``myshop.api.main:app`` -> ``myshop``), else the command (``datasette``)."""
    if import_string is None:
        import_string = next((arg for arg in sys.argv[1:] if _looks_like_import(arg)), None)
    if import_string:
        module = import_string.split(":", 1)[0].replace("/", ".").removesuffix(".py")
        parts = [part for part in module.split(".") if part and part != "src"]
        while len(parts) > 1 and parts[-1] in _GENERIC:
            parts.pop()
        if parts:
            return parts[0]
    command = sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py") if sys.argv else ""
    if command and command not in ("-c", "-m") and not command.startswith("python"):
        return command
    return None


def _looks_like_import(arg: str) -> bool:
    module, _, attribute = arg.partition(":")
    return bool(module and attribute and not arg.startswith("-")) and all(
        part.isidentifier() for part in module.split(".")
    )


# --- uvicorn ---------------------------------------------------------------------------------


def _hook_uvicorn(module: Any) -> None:
    claim("uvicorn")
    wrapt.wrap_function_wrapper(module, "Config.load", _uvicorn_loaded)


def _uvicorn_loaded(wrapped: Any, config: Any, args: Any, kwargs: Any) -> Any:
    result = wrapped(*args, **kwargs)
    safely("uvicorn", _wrap_uvicorn_app, config)
    return result


def _wrap_uvicorn_app(config: Any) -> None:
    holder, attribute = config, "loaded_app"
    app = config.loaded_app
    while type(app).__name__ in _UVICORN_OUTER and _top_module(app) == "uvicorn":
        holder, attribute, app = app, "app", app.app
    import_string = config.app if isinstance(config.app, str) else None
    if config.interface == "wsgi":  # uvicorn's (or a2wsgi's) adapter around the WSGI app
        inner = wrap_wsgi_app(app.app)
        app.app = _closing(inner) if type(app).__module__.startswith("uvicorn.") else inner
        return
    setattr(holder, attribute, instrument_asgi_app("uvicorn", app, import_string))


def _closing(app: Any) -> Any:
    """uvicorn's own (deprecated) WSGI adapter never calls ``close()`` on the response, which
    PEP 3333 requires and which ends our request (and Flask's teardown): close it after the
    last chunk."""

    def closing_app(environ: Any, start_response: Any) -> Any:
        iterable = app(environ, start_response)
        try:
            yield from iterable
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()

    return closing_app


# --- hypercorn -------------------------------------------------------------------------------


def _hook_hypercorn(module: Any) -> None:
    claim("hypercorn")
    wrapt.wrap_function_wrapper(module, "ASGIWrapper.__init__", _replace_app("hypercorn", 0))
    wrapt.wrap_function_wrapper(module, "WSGIWrapper.__init__", _replace_wsgi_app(0))


# --- granian ---------------------------------------------------------------------------------


def _hook_granian_asgi(module: Any) -> None:
    claim("granian")
    wrapt.wrap_function_wrapper(module, "_callback_wrapper", _replace_app("granian", 0))
    wrapt.wrap_function_wrapper(module, "LifespanProtocol.__init__", _replace_app("granian", 0))


def _hook_granian_wsgi(module: Any) -> None:
    claim("granian")
    wrapt.wrap_function_wrapper(module, "_callback_wrapper", _replace_wsgi_app(0))


def _hook_granian_rsgi(module: Any) -> None:
    claim("granian")

    def rsgi(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        say_once(
            "rsgi",
            "granian's RSGI interface is not instrumented (serve the app with "
            "`--interface asgi` or `--interface wsgi` to get telemetry)",
        )
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "_callback_wrapper", rsgi)


# --- daphne ----------------------------------------------------------------------------------


def _hook_daphne(module: Any) -> None:
    claim("daphne")

    def init(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if args:
            args = (instrument_asgi_app("daphne", args[0]), *args[1:])
        elif "application" in kwargs:
            kwargs["application"] = instrument_asgi_app("daphne", kwargs["application"])
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(module, "Server.__init__", init)


# --- shared ----------------------------------------------------------------------------------


def _replace_app(server: str, index: int) -> Callable[..., Any]:
    """A wrapper putting the ASGI app passed as positional argument ``index`` in our
    middleware."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if len(args) > index:
            app = instrument_asgi_app(server, args[index])
            args = (*args[:index], app, *args[index + 1 :])
        return wrapped(*args, **kwargs)

    return wrapper


def _replace_wsgi_app(index: int) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if len(args) > index:
            args = (*args[:index], wrap_wsgi_app(args[index]), *args[index + 1 :])
        return wrapped(*args, **kwargs)

    return wrapper


#: name -> (module, hook): registered by :func:`._hooks.register` like the framework hooks.
SERVER_HOOKS: dict[str, tuple[tuple[str, Callable[[Any], None]], ...]] = {
    "uvicorn": (("uvicorn.config", _hook_uvicorn),),
    "hypercorn": (("hypercorn.app_wrappers", _hook_hypercorn),),
    "granian": (
        ("granian.asgi", _hook_granian_asgi),
        ("granian.wsgi", _hook_granian_wsgi),
        ("granian.rsgi", _hook_granian_rsgi),
    ),
    "daphne": (("daphne.server", _hook_daphne),),
}


# Frameworks whose own hook instruments them (or that are ASGI): not wrapped again.
_FRAMEWORK_MODULES = ("flask", "django", "starlette", "fastapi", "telemetry_web")


def wrap_wsgi_app(app: Any) -> Any:
    """A WSGI app no framework hook covers, in the WSGI middleware (else unchanged)."""
    module = getattr(type(app), "__module__", "") or ""
    if inspect.isfunction(app) or inspect.ismethod(app):
        module = getattr(app, "__module__", "") or ""
    if module.split(".")[0] in _FRAMEWORK_MODULES:
        return app
    call = app if inspect.isroutine(app) else getattr(app, "__call__", None)  # noqa: B004
    if inspect.iscoroutinefunction(call):
        return app
    _process.prepare_multiprocess()
    from ..wsgi import TelemetryWSGIMiddleware

    return TelemetryWSGIMiddleware(app, telemetry=process_telemetry(service_hint()))
