from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "sample_apps.django_project.api"
    label = "sample_api"
