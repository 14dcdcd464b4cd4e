"""Included under ``api/``: the route labels read ``/api/users/<int:user_id>``."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("users", views.list_users),
    path("users/<int:user_id>", views.get_user),
    path("fail", views.fail),
    path("stream", views.stream),
    path("orders", views.create_order),
    path("slow", views.slow),
]
