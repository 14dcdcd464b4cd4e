"""The conformance endpoints as a Django URLconf, and the project's own error middleware.

Installed for the Django driver alone with ``override_settings`` (see ``conftest.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from ._adapters import FAILURE, Unavailable


@require_GET
def user(request: HttpRequest, user_id: int) -> HttpResponse:
    return JsonResponse({"id": user_id})


@require_GET
def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(FAILURE)


@require_GET
def missing_user(request: HttpRequest) -> HttpResponse:
    raise Http404("no such user")


@require_POST
def orders(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"order": json.loads(request.body)}, status=201)


@require_GET
def unavailable(request: HttpRequest) -> HttpResponse:
    raise Unavailable("backend down")


class ServiceUnavailable:
    """The project's error handling: Django's hook for it is ``process_exception``."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        if isinstance(exception, Unavailable):
            return HttpResponse("try later", status=503)
        return None


urlpatterns = [
    path("api/users/<int:user_id>", user),
    path("api/fail", fail),
    path("api/missing-user", missing_user),
    path("api/orders", orders),
    path("api/unavailable", unavailable),
]
