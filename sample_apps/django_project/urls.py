"""The project's URLs: the API app's under ``api/`` (an include, so routes are nested)."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("api/", include("sample_apps.django_project.api.urls")),
]
