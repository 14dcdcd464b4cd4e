"""The sample endpoints; ``slow`` is an async view, ``stream`` streams five chunks."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from telemetry_web.django import get_telemetry

USERS = {1: {"id": 1, "name": "Ada"}, 2: {"id": 2, "name": "Grace"}}
STREAM_CHUNKS = 5
STREAM_GAP = 0.01  # seconds before each chunk
stdlib_log = logging.getLogger("sample_django.stdlib")


def list_users(request: HttpRequest) -> JsonResponse:
    return JsonResponse(list(USERS.values()), safe=False)


def get_user(request: HttpRequest, user_id: int) -> JsonResponse:
    user = USERS.get(user_id)
    if user is None:
        raise Http404("no such user")
    return JsonResponse(user)


def fail(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("the sample endpoint that always fails")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    # The iterator that suits the server: Django buffers the other kind whole, with a warning.
    if isinstance(request, ASGIRequest):
        return StreamingHttpResponse(_numbers_async(), content_type="text/plain")
    return StreamingHttpResponse(_numbers(), content_type="text/plain")


def _numbers() -> Iterator[bytes]:
    for i in range(STREAM_CHUNKS):
        time.sleep(STREAM_GAP)
        yield f"{i}\n".encode()


async def _numbers_async() -> AsyncIterator[bytes]:
    for i in range(STREAM_CHUNKS):
        await asyncio.sleep(STREAM_GAP)
        yield f"{i}\n".encode()


@csrf_exempt
@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    order = json.loads(request.body) if request.body else {}
    log = get_telemetry().get_logger("sample_django")
    log.bind(user_id=order.get("user_id", 1), items=len(order.get("items", []))).info(
        "Processing order"
    )
    stdlib_log.warning("stock is low for %s", "sku-42")
    return JsonResponse({"status": "accepted"}, status=201)


async def slow(request: HttpRequest) -> JsonResponse:
    await asyncio.sleep(0.01)
    return JsonResponse({"slept_ms": 10})
