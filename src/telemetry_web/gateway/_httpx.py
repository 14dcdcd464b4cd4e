"""Upstream calls through an ``httpx.AsyncClient``: one CLIENT span per call, retries and the
timeout as its events."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import httpx
from opentelemetry.instrumentation.utils import suppress_http_instrumentation

if TYPE_CHECKING:
    from ._hooks import Gateway

__all__ = ["send_upstream"]


async def send_upstream(
    gateway: Gateway,
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    upstream: str,
    retries: int = 0,
    retry_statuses: Collection[int] = (502, 503, 504),
    timeout: float | None = None,
) -> httpx.Response:
    """Send ``request`` (body read) to ``upstream``: retried ``retries`` times on a connection
    error or a status in ``retry_statuses`` (each a ``retry`` event), each attempt cut at
    ``timeout`` seconds (``httpx.TimeoutException`` raised after a ``timeout`` event).

    The instrumentor's own span is suppressed for these sends: the gateway's span is the call.
    """
    headers: dict[str, str] = {}
    call = gateway.on_upstream_start(
        upstream, method=request.method, url=str(request.url), headers=headers
    )
    request.headers.update(headers)
    if timeout is not None:
        request.extensions = {**request.extensions, "timeout": httpx.Timeout(timeout).as_dict()}
    while True:
        try:
            with suppress_http_instrumentation():
                response = await client.send(request)
        except httpx.TimeoutException as exc:
            call.timeout(timeout)
            gateway.on_upstream_end(call, exception=exc, timed_out=True)
            raise
        except httpx.TransportError as exc:
            if call.attempts <= retries:
                call.retry(reason=type(exc).__name__)
                continue
            gateway.on_upstream_end(call, exception=exc)
            raise
        except BaseException as exc:
            gateway.on_upstream_end(call, exception=exc)
            raise
        if response.status_code in retry_statuses and call.attempts <= retries:
            await response.aclose()
            call.retry(reason=str(response.status_code))
            continue
        gateway.on_upstream_end(call, status=response.status_code)
        return response
