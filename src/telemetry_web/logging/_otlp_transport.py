"""How the OTLP log sink reaches the Collector: ``POST /v1/logs`` with a protobuf body over one
kept-alive connection, or ``LogsService/Export`` on a gRPC channel. Each ``export`` returns the
records a partial success rejected, or raises :class:`Retry` (another attempt may work) or
:class:`Rejected` (the batch is refused for good), following the OTLP specification's failure
rules."""

from __future__ import annotations

import http.client
import importlib
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .. import __version__
from .._redaction import scrub_text
from ..errors import MissingExtraError
from ._shipping import KeptAliveConnection, Retry, retry_after

__all__ = ["GRPC_PORT", "HTTP_PORT", "GrpcTransport", "HttpTransport", "Rejected", "Retry",
           "grpc_modules", "where"]  # fmt: skip

HTTP_PORT, GRPC_PORT = 4318, 4317
# OTLP/HTTP: "429, 502, 503, 504 SHOULD be retried"; any other status is not.
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_GRPC_RETRYABLE = ("CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE",
                   "DATA_LOSS")  # fmt: skip


class Rejected(Exception):
    """An export the server refused for good: the batch is dropped."""


class HttpTransport:
    """``POST /v1/logs`` with a protobuf body over one kept-alive connection."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float, pb: Any) -> None:
        self._connection = KeptAliveConnection(url, timeout=timeout)
        parts = urllib.parse.urlsplit(url)
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"telemetry-web/{__version__}",
            **headers,
        }
        self._where = where(url)
        self._pb = pb

    def export(self, request: Any) -> tuple[int, str]:
        """``(rejected records, the server's message)`` of an accepted request."""
        body = request.SerializeToString()
        try:
            status, response, payload = self._connection.post(self._path, body, self._headers)
        except (OSError, http.client.HTTPException) as exc:
            raise Retry(f"{self._where}: {type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return _partial_success(self._pb, payload, self._where)
        text = f"{self._where}: HTTP {status}{_status_detail(payload)}"
        if status in _RETRY_STATUSES:
            raise Retry(text, retry_after(response.getheader("Retry-After")))
        raise Rejected(text)

    def abort(self) -> None:
        self._connection.abort()

    def close(self) -> None:
        self._connection.close()


class GrpcTransport:
    """``opentelemetry.proto.collector.logs.v1.LogsService/Export`` on one channel."""

    def __init__(self, url: str, headers: Mapping[str, str], timeout: float, pb: Any) -> None:
        grpc, service_grpc = grpc_modules()
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or GRPC_PORT
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if parts.scheme == "https":
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            self._channel = grpc.insecure_channel(target)
        self._stub = service_grpc.LogsServiceStub(self._channel)
        self._metadata = tuple((k.lower(), v) for k, v in headers.items())
        self._timeout = timeout
        self._grpc = grpc
        self._where = where(url)
        self._pb = pb

    def export(self, request: Any) -> tuple[int, str]:
        try:
            response = self._stub.Export(request, timeout=self._timeout, metadata=self._metadata)
        except self._grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            name = getattr(code, "name", "UNKNOWN")
            details = exc.details() if hasattr(exc, "details") else ""
            text = f"{self._where}: gRPC {name}" + (f" ({scrub_text(details)})" if details else "")
            delay = _retry_info(exc)
            if name in _GRPC_RETRYABLE or (name == "RESOURCE_EXHAUSTED" and delay is not None):
                raise Retry(text, delay) from None
            raise Rejected(text) from None
        partial = response.partial_success
        return partial.rejected_log_records, _rejected_text(self._where, partial)

    def abort(self) -> None:
        self._channel.close()  # cancels an export in progress

    def close(self) -> None:
        self._channel.close()


def grpc_modules() -> tuple[Any, Any]:
    try:
        # Imported by name: grpcio and googleapis-common-protos carry no type information.
        grpc = importlib.import_module("grpc")
        logs_service_pb2_grpc = importlib.import_module(
            "opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc"
        )
    except ImportError:
        raise MissingExtraError(
            "logging.sinks.otlp (protocol: grpc)", "opentelemetry-exporter-otlp", "otlp"
        ) from None
    return grpc, logs_service_pb2_grpc


def _retry_info(exc: Any) -> float | None:
    """The delay of a ``google.rpc.RetryInfo`` in the trailing metadata, if any."""
    try:
        retry_info = importlib.import_module("google.rpc.error_details_pb2").RetryInfo
        metadata = dict(exc.trailing_metadata() or ())
        raw = metadata.get("google.rpc.retryinfo-bin")
        if raw is None:
            return None
        delay = retry_info.FromString(raw).retry_delay
        return float(delay.seconds) + float(delay.nanos) / 1e9
    except Exception:
        return None


def _partial_success(pb: Any, payload: bytes, where: str) -> tuple[int, str]:
    try:
        response = pb.service.ExportLogsServiceResponse.FromString(payload)
    except Exception:
        return 0, ""  # accepted; an answer we cannot read says nothing about rejections
    return response.partial_success.rejected_log_records, _rejected_text(
        where, response.partial_success
    )


def _rejected_text(where: str, partial: Any) -> str:
    message = scrub_text(partial.error_message[:200]) if partial.error_message else "no reason"
    return f"{where}: {partial.rejected_log_records} records rejected: {message}"


def _status_detail(payload: bytes) -> str:
    """The message of a ``google.rpc.Status`` body (OTLP/HTTP's error answer), else the
    body's first line."""
    if not payload:
        return ""
    try:
        status = importlib.import_module("google.rpc.status_pb2").Status
        message = str(status.FromString(payload).message)
    except Exception:
        message = ""
    if not message:
        lines = payload[:200].decode("utf-8", "replace").strip().splitlines()
        message = lines[0] if lines else ""
    return f" ({scrub_text(message[:200])})" if message else ""


def where(url: str) -> str:
    """``url`` as messages show it: no user, password or query string."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path,
                                    "", ""))  # fmt: skip
