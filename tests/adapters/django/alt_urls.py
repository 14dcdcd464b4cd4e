"""A second urlconf, chosen per request by AlternateUrlconfMiddleware."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [path("alt/<int:n>", views.ok)]
