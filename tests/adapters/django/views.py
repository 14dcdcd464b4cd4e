"""The views of the test project (sync and async, streamed, failing, DRF)."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Iterator

from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.csrf import csrf_exempt
from opentelemetry import trace
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from telemetry_web.django import get_telemetry

STREAM_CHUNKS = (b"alpha-", b"bravo-", b"charlie-", b"delta")
STREAM_GAP = 0.03  # seconds slept before each chunk after the first
FILE_BODY = b"0123456789" * 100


def ok(request: HttpRequest, **kwargs: object) -> HttpResponse:
    return HttpResponse(b"ok")


async def ok_async(request: HttpRequest, **kwargs: object) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse(b"ok-async")


def user(request: HttpRequest, user_id: int) -> JsonResponse:
    if user_id == 999:
        raise Http404("no such user")
    return JsonResponse({"id": user_id})


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"echo:" + request.body, status=201)


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("kaboom")


async def boom_async(request: HttpRequest) -> HttpResponse:
    raise ValueError("async kaboom")


def teapot(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"short and stout", status=418)


def _chunks() -> Iterator[bytes]:
    for i, chunk in enumerate(STREAM_CHUNKS):
        if i:
            time.sleep(STREAM_GAP)
        with trace.get_tracer(__name__).start_as_current_span(f"chunk-{i}"):
            yield chunk


async def _chunks_async() -> AsyncIterator[bytes]:
    for i, chunk in enumerate(STREAM_CHUNKS):
        if i:
            await asyncio.sleep(STREAM_GAP)
        yield chunk


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_chunks(), content_type="text/plain")


async def stream_async(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_chunks_async(), content_type="text/plain")


def stream_fail(request: HttpRequest) -> StreamingHttpResponse:
    def broken() -> Iterator[bytes]:
        yield b"first"
        raise OSError("the source went away")

    return StreamingHttpResponse(broken(), content_type="text/plain")


def file(request: HttpRequest) -> FileResponse:
    return FileResponse(io.BytesIO(FILE_BODY), content_type="application/octet-stream")


def logs(request: HttpRequest) -> HttpResponse:
    get_telemetry().get_logger("tests.app").info("structlog inside", marker="structlog")
    logging.getLogger("tests.stdlib").warning("stdlib inside")
    return HttpResponse(b"logged")


class UserViewSet(viewsets.ViewSet):
    """A DRF viewset: list, retrieve and a detail action."""

    def list(self, request: Request, **kwargs: object) -> Response:
        return Response([{"id": 1}])

    def retrieve(self, request: Request, pk: str | None = None, **kwargs: object) -> Response:
        if pk != "1":
            raise NotFound("no such user")
        return Response({"id": 1})

    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str | None = None, **kwargs: object) -> Response:
        return Response({"promoted": pk}, status=202)
