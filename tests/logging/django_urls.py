"""Views for the Django correlation tests (installed with ``override_settings``)."""

from __future__ import annotations

import asyncio

from django.http import HttpRequest, HttpResponse
from django.urls import path

from telemetry_web.django import get_telemetry
from telemetry_web.logging import bind_context


def sync_view(request: HttpRequest, order_id: int) -> HttpResponse:
    bind_context(user="ada")
    get_telemetry().get_logger("views").info("sync view", order_id=order_id)
    return HttpResponse("ok")


async def async_view(request: HttpRequest, order_id: int) -> HttpResponse:
    bind_context(user="ada")
    log = get_telemetry().get_logger("views")
    log.info("async view", order_id=order_id)

    async def in_task() -> None:
        log.info("async task")

    await asyncio.create_task(in_task())
    return HttpResponse("ok")


urlpatterns = [
    path("sync/<int:order_id>", sync_view),
    path("async/<int:order_id>", async_view),
]
