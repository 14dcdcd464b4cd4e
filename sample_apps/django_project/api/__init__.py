"""The sample project's API app: the endpoints of sample_apps/starlette_app, in Django."""
