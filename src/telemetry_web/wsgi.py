"""WSGI middleware for any WSGI application (Falcon, Bottle, Pyramid, Flask, …).

    app.wsgi_app = TelemetryWSGIMiddleware(app.wsgi_app, telemetry=telemetry)      # Flask-style
    application = TelemetryWSGIMiddleware(application, telemetry=telemetry,
                                          route_resolver=lambda environ: "/users/{id}")

Each request gets one server span, its RED metrics and one request log line, exactly as under
the ASGI middleware; ``/metrics``, ``/health`` and ``/ready`` are answered here for GET and HEAD.
Without a ``route_resolver(environ) -> template | None`` every request is ``<unmatched>``
(``telemetry_web.flask`` resolves Flask's rule templates itself).

- Paths: the built-in endpoints and ``http.exclude_paths`` match ``PATH_INFO``, the path the
  wrapped app routes; spans and log lines carry ``SCRIPT_NAME + PATH_INFO`` (UTF-8 recovered).
- Timing: the request ends when the server closes the returned iterable, after the last chunk
  of a streamed body. The app's own ``close()`` is always called, exactly once, before that.
- File wrappers: when the app returns an instance of the server's ``wsgi.file_wrapper`` (what
  ``werkzeug.utils.send_file`` does under gunicorn), that very object is returned, so the
  server can still ``sendfile()`` it; only its ``close`` is hooked, and the response size is
  its ``Content-Length`` (or what is left of the file).
- Errors: an exception escaping the app (from the call or while iterating) is recorded (status
  500 unless body bytes already went out) and re-raised; the server then writes its own 500,
  which cannot carry the request id. ``exc_info`` given to ``start_response`` is passed on and
  recorded as the request's exception.
- Threads: ``begin`` attaches the span context to the calling thread; every WSGI server iterates
  and closes the response in that same thread, where ``finish`` detaches it. Per-request state
  lives in one object per request (also in ``environ``), never on the middleware.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from mypy_extensions import mypyc_attr

from . import semconv as sc
from ._engine import Telemetry, default_telemetry
from ._http.endpoints import answer_wsgi
from ._http.environ import header_keys, pick_headers, pick_response_headers, protocol, query, server
from ._lifecycle import ActiveRequest, RequestLifecycle

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["TelemetryWSGIMiddleware", "WSGIRouteResolver"]

WSGIRouteResolver = Callable[[dict[str, Any]], "str | None"]

_log: Final = logging.getLogger("telemetry_web")
# The request being recorded, set in the environ by the first copy of the middleware.
ENVIRON_KEY: Final = "telemetry_web.request"
_perf: Final = time.perf_counter


# A plain class when compiled (scripts/compile.py): users subclass and extend it.
@mypyc_attr(native_class=False)
class TelemetryWSGIMiddleware:
    """Telemetry for every HTTP request of a WSGI app.

    Args:
        app: the WSGI application.
        telemetry: the :class:`~telemetry_web.Telemetry` to record into (default: one built from
            the environment, shared by the process).
        route_resolver: ``environ -> route template or None``, called before the app runs (it
            must not modify the environ); None or an exception means ``<unmatched>``.
    """

    def __init__(
        self,
        app: WSGIApplication,
        telemetry: Telemetry | None = None,
        *,
        route_resolver: WSGIRouteResolver | None = None,
    ) -> None:
        self.app = app
        self.telemetry = telemetry if telemetry is not None else default_telemetry()
        self.route_resolver = route_resolver
        self._header_map: tuple[RequestLifecycle | None, dict[str, str]] = (None, {})
        # Health checks run in a daemon thread from app start (restarted in forked workers).
        self.telemetry.start_health_checks(thread=True)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        telemetry = self.telemetry
        if telemetry.health.needs_start:  # its runner is gone (a fork without hooks): again
            telemetry.start_health_checks(thread=True)
        raw_path = _recover(environ.get("PATH_INFO", ""))
        path_info = raw_path or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        endpoint = telemetry.endpoints.get(path_info)
        if endpoint is not None and method in ("GET", "HEAD"):
            return answer_wsgi(endpoint, environ, start_response, method)
        if telemetry.is_excluded(path_info):
            return self.app(environ, start_response)
        outer = environ.get(ENVIRON_KEY)
        if outer is not None:  # another copy records this request; at most improve its route
            if self.route_resolver is not None and outer.active.route == sc.ROUTE_UNMATCHED:
                outer.active.route = self._route(environ)
            return self.app(environ, start_response)
        life = telemetry.lifecycle
        try:
            headers = self._headers(environ, life)
            active = life.begin(
                method=method,
                scheme=environ.get("wsgi.url_scheme", "http"),
                path=(_recover(environ.get("SCRIPT_NAME", "")) + raw_path) or "/",
                query=query(environ),
                route=self._route(environ),
                headers=headers,
                client=environ.get("REMOTE_ADDR") or None,
                server=server(environ),
                protocol_version=protocol(environ),
            )
        except Exception:  # telemetry must never cost the request
            _log.exception("telemetry-web could not start recording a request")
            return self.app(environ, start_response)
        declared = headers.get("content-length", "")
        exchange = _Exchange(
            active,
            start_response,
            telemetry.settings.http.request_id_header,
            int(declared) if declared.isdigit() and len(declared) < 16 else 0,
        )
        environ[ENVIRON_KEY] = exchange
        stream = environ.get("wsgi.input")
        if stream is not None and not declared and _may_have_body(environ):
            # Counted only when no length is declared: a chunked body (RFC 9112 6.3: with
            # neither Content-Length nor Transfer-Encoding a request has no body at all).
            exchange.input = environ["wsgi.input"] = _CountingInput(stream)
        try:
            result = self.app(environ, exchange.start_response)
        except BaseException as exc:
            exchange.error = exc
            exchange.finish()
            raise
        wrapper_type = environ.get("wsgi.file_wrapper")
        if (
            isinstance(wrapper_type, type)
            and isinstance(result, wrapper_type)
            and _hook_file_wrapper(result, exchange)
        ):
            return result
        return _ObservedBody(result, exchange)

    def _route(self, environ: WSGIEnvironment) -> str:
        if self.route_resolver is None:
            return sc.ROUTE_UNMATCHED
        try:
            return self.route_resolver(environ) or sc.ROUTE_UNMATCHED
        except Exception:
            _log.exception("route_resolver failed; labelling the request <unmatched>")
            return sc.ROUTE_UNMATCHED

    def _headers(self, environ: WSGIEnvironment, life: RequestLifecycle) -> dict[str, str]:
        """The headers the lifecycle reads; a value that is not UTF-8 counts as absent."""
        cached_life, keys = self._header_map
        if cached_life is not life:
            keys = header_keys(life.wanted_headers)
            self._header_map = (life, keys)
        return pick_headers(environ, keys)


def note_exception(environ: WSGIEnvironment, exception: BaseException) -> None:
    """Tell the middleware recording this request that the app handled ``exception``.

    For framework adapters whose error handlers turn exceptions into responses (Flask): the
    exception goes on the span, and with a 5xx status also on the request log line.
    """
    exchange = environ.get(ENVIRON_KEY)
    if isinstance(exchange, _Exchange):
        exchange.handled = exception  # the last one: a handler that raised caused the 500


class _Exchange:
    """One request's state between the app call and the close of its response."""

    __slots__ = ("active", "body_started", "content_length", "declared", "error", "finished",
                 "handled", "id_header", "id_lower", "input", "reported", "response_size",
                 "server_start", "server_write", "status")  # fmt: skip

    def __init__(
        self, active: ActiveRequest, server_start: StartResponse, id_name: str, declared: int
    ) -> None:
        self.active = active
        self.server_start = server_start
        self.server_write: Callable[[bytes], object] | None = None
        self.id_lower = id_name.lower()
        self.id_header = (id_name, active.request_id)
        self.declared = declared
        self.input: _CountingInput | None = None
        self.status = 0
        self.content_length: str | None = None
        self.response_size = 0
        self.body_started = False
        self.error: BaseException | None = None  # escaped the app
        self.reported: BaseException | None = None  # exc_info given to start_response
        self.handled: BaseException | None = None  # noted by a framework's error handling
        self.finished = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        id_lower = self.id_lower
        has_id = False
        content_length = None
        for name, value in headers:
            lower = name.lower()
            if lower == id_lower:
                has_id = True
            elif lower == "content-length":
                content_length = value
        if self.active.life.response_header_names:
            self._capture(headers)
        if not has_id:
            headers = [*headers, self.id_header]
        if exc_info is not None:
            # Raises exc_info's exception when the headers already went out (PEP 3333): the
            # status the client saw stays the one recorded.
            self.server_write = self.server_start(status, headers, exc_info)
            if exc_info[1] is not None:
                self.reported = exc_info[1]
        else:
            self.server_write = self.server_start(status, headers)
        code = status[:3]
        self.status = int(code) if code.isdigit() else 0
        self.content_length = content_length
        return self.write

    def _capture(self, headers: list[tuple[str, str]]) -> None:
        try:
            names = self.active.life.response_header_names
            self.active.capture_response_headers(pick_response_headers(headers, names))
        except Exception:
            _log.exception("telemetry-web could not capture response headers")

    def write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: counted, then passed to the server's."""
        self.body_started = True
        self.response_size += len(data)
        self.server_write(data)  # type: ignore[misc]

    def finish(self, file_size: int | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        ended = _perf()
        try:
            status = self.status
            error = self.error
            if error is not None and (not self.body_started or status == 0):
                status = 500  # nothing went out yet: the server answers with a 500
            elif status == 0:
                status = 500  # start_response never called: the server fails the request
            exception = error if isinstance(error, Exception) else None
            if exception is None and isinstance(self.reported, Exception):
                exception = self.reported
            handled = self.handled
            if exception is None and isinstance(handled, Exception):
                if status >= 500:
                    exception = handled
                else:  # handled into a 4xx: an event on the span, not an error line
                    span = self.active.span
                    if span is not None and span.is_recording():
                        span.record_exception(handled)
            counted = self.input.count if self.input is not None else 0
            response_size = self.response_size if file_size is None else file_size
            self.active.finish(
                status,
                request_size=max(self.declared, counted),
                response_size=response_size,
                exception=exception,
                ended=ended,
            )
        except Exception:
            _log.exception("telemetry-web could not record a request")


class _ObservedBody:
    """The app's response iterable, counted; closing it closes the app's and finishes."""

    __slots__ = ("_closed", "_exchange", "_iterable", "_iterator")

    def __init__(self, iterable: Iterable[bytes], exchange: _Exchange) -> None:
        self._iterable = iterable
        self._iterator: Iterator[bytes] | None = None
        self._exchange = exchange
        self._closed = False

    def __iter__(self) -> _ObservedBody:
        return self

    def __next__(self) -> bytes:
        try:
            iterator = self._iterator
            if iterator is None:
                iterator = self._iterator = iter(self._iterable)
            chunk = next(iterator)
        except StopIteration:
            raise
        except BaseException as exc:
            if self._exchange.error is None:
                self._exchange.error = exc
            raise
        if chunk:
            self._exchange.body_started = True
            self._exchange.response_size += len(chunk)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            if self._exchange.error is None:
                self._exchange.error = exc
            raise
        finally:
            self._exchange.finish()


def _hook_file_wrapper(wrapper: Any, exchange: _Exchange) -> bool:
    """Keep the server's file wrapper (so it can sendfile) and finish when it is closed."""
    size = _file_size(wrapper, exchange.content_length)
    original = getattr(wrapper, "close", None)
    closed = False

    def close() -> None:
        nonlocal closed
        if closed:
            return
        closed = True
        try:
            if original is not None:
                original()
        except BaseException as exc:
            if exchange.error is None:
                exchange.error = exc
            raise
        finally:
            exchange.finish(file_size=size)

    try:
        wrapper.close = close
    except (AttributeError, TypeError):  # slots or a read-only close: use the iterable proxy
        return False
    return True


def _file_size(wrapper: Any, content_length: str | None) -> int:
    if content_length is not None and content_length.isdigit():
        return int(content_length)
    filelike: Any = getattr(wrapper, "filelike", None) or getattr(wrapper, "file", None)
    try:
        return max(0, int(os.fstat(filelike.fileno()).st_size) - int(filelike.tell()))
    except Exception:  # not a real file: the size is unknown
        return 0


class _CountingInput:
    """``wsgi.input``, counting the bytes the app reads (chunked bodies declare no length)."""

    __slots__ = ("_stream", "count")

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.count = 0

    def read(self, *args: Any) -> bytes:
        data: bytes = self._stream.read(*args)
        self.count += len(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data: bytes = self._stream.readline(*args)
        self.count += len(data)
        return data

    def readlines(self, *args: Any) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(*args)
        self.count += sum(len(line) for line in lines)
        return lines

    def readinto(self, buffer: Any) -> int:
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            size: int = readinto(buffer) or 0
        else:
            data = self._stream.read(len(buffer))
            size = len(data)
            buffer[:size] = data
        self.count += size
        return size

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self.count += len(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _may_have_body(environ: WSGIEnvironment) -> bool:
    """A body of undeclared length: chunked (servers that dechunk set ``wsgi.input_terminated``)."""
    return "HTTP_TRANSFER_ENCODING" in environ or bool(environ.get("wsgi.input_terminated"))


def _recover(raw: str) -> str:
    """A latin-1 decoded path back to the UTF-8 it was (undecodable bytes become U+FFFD)."""
    if raw.isascii():
        return raw
    try:
        return raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:  # the server already gave real text
        return raw
