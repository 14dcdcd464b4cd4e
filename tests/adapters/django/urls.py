"""The test project's URLs: nested includes, converters, re_path, DRF, streams, failures."""

from __future__ import annotations

from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("users", views.UserViewSet, basename="user")

v1 = [path("users/<int:user_id>", views.user)]
api = [
    path("v1/", include(v1)),
    path("echo", views.echo),
    path("hello-async", views.ok_async),
]
legacy = [re_path(r"^posts/(?P<post_id>\d+)/$", views.ok)]

urlpatterns = [
    path("api/", include(api)),
    path("pages/<slug:slug>", views.ok),
    path("items/<uuid:item_id>", views.ok),
    path("files/<path:rest>", views.ok),
    re_path(r"^archive/(?P<year>[0-9]{4})/$", views.ok),
    re_path(r"^legacy/", include(legacy)),
    path("drf/", include(router.urls)),
    path("boom", views.boom),
    path("boom-async", views.boom_async),
    path("teapot", views.teapot),
    path("stream", views.stream),
    path("stream-async", views.stream_async),
    path("stream-fail", views.stream_fail),
    path("file", views.file),
    path("logs", views.logs),
    path("static/app.css", views.ok),
    path("", views.ok),
]
