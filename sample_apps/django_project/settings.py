"""Settings of the sample project: no database, no templates, DEBUG off."""

from __future__ import annotations

SECRET_KEY = "sample-django-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]

INSTALLED_APPS = [
    "telemetry_web.django",
    "sample_apps.django_project.api",
]
MIDDLEWARE = [
    "telemetry_web.django.DjangoTelemetryMiddleware",  # first: it times everything after it
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "sample_apps.django_project.urls"
WSGI_APPLICATION = "sample_apps.django_project.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# The configuration file's schema; TELEMETRY_* and OTEL_* variables override it.
TELEMETRY = {"service": "sample-django"}
