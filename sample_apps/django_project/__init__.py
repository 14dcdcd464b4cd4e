"""The sample Django project: ``gunicorn sample_apps.django_project.wsgi`` or
``uvicorn sample_apps.django_project.asgi:application`` (from the repository root), or
``python sample_apps/django_project/manage.py runserver``.

Two entries in settings.py are all telemetry-web needs: ``"telemetry_web.django"`` in
``INSTALLED_APPS`` and ``"telemetry_web.django.DjangoTelemetryMiddleware"`` first in ``MIDDLEWARE``.
"""
