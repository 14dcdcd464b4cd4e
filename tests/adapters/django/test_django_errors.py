"""Failures: a view's exception is recorded with the 500 Django answers; 4xx are outcomes."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from opentelemetry.trace import StatusCode

from telemetry_web.testing import CapturedTelemetry

from ._support import count, request_lines
from .conftest import MIDDLEWARE, Fetch


@pytest.mark.parametrize(
    ("path", "error_type", "message"),
    [("/boom", "RuntimeError", "kaboom"), ("/boom-async", "ValueError", "async kaboom")],
)
def test_view_exception_recorded_with_the_500(
    captured: CapturedTelemetry, fetch: Fetch, path: str, error_type: str, message: str
) -> None:
    """A sync or async view's exception is on the span and the log line of Django's 500."""
    response = fetch(path)
    assert response.status_code == 500
    (span,) = captured.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == error_type
    assert (span.attributes or {})["http.response.status_code"] == 500
    (event,) = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {})["exception.message"] == message
    (line,) = request_lines(captured.logs())
    assert line["level"] == "error"
    assert line["status"] == 500
    assert line["exception"]["type"] == error_type
    assert line["request_id"] == response["X-Request-ID"]
    assert count(captured, "GET", path, "500") == 1


def test_django_error_log_carries_the_request_ids(
    captured: CapturedTelemetry, fetch: Fetch
) -> None:
    """Django's own "Internal Server Error" record is logged inside the request's context."""
    response = fetch("/boom")
    events = captured.logs()
    (line,) = request_lines(events)
    (django_line,) = [e for e in events if e.get("logger") == "django.request"]
    assert django_line["trace_id"] == line["trace_id"]
    assert django_line["request_id"] == response["X-Request-ID"]


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/api/v1/users/999", "/api/v1/users/<int:user_id>", 404),
        ("/drf/users/2/", "/drf/users/<pk>/", 404),
    ],
)
def test_http404_is_an_outcome_not_a_failure(
    captured: CapturedTelemetry, fetch: Fetch, path: str, route: str, status: int
) -> None:
    """Http404 (and DRF's NotFound) gives a 404 with no exception on the span or the line."""
    assert fetch(path).status_code == status
    (span,) = captured.spans()
    assert span.status.status_code is StatusCode.UNSET
    assert not [e for e in span.events if e.name == "exception"]
    assert "error.type" not in (span.attributes or {})
    (line,) = request_lines(captured.logs())
    assert line["level"] == "warning"
    assert "exception" not in line
    assert line["route"] == route


@override_settings(MIDDLEWARE=[*MIDDLEWARE, "tests.adapters.django.middleware.ExplodeMiddleware"])
def test_exception_in_a_later_middleware_is_a_500(
    captured: CapturedTelemetry, fetch: Fetch
) -> None:
    """A middleware's exception (no process_exception call) is still counted as its 500."""
    response = fetch("/explode")
    assert response.status_code == 500
    assert response["X-Request-ID"]
    (span,) = captured.spans()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "500"
    assert count(captured, "GET", "<unmatched>", "500") == 1


@override_settings(
    MIDDLEWARE=[*MIDDLEWARE, "tests.adapters.django.middleware.ShortCircuitMiddleware"]
)
def test_response_of_a_later_middleware_is_recorded(
    captured: CapturedTelemetry, fetch: Fetch
) -> None:
    """A response returned by a middleware after ours (a 403) is what gets recorded."""
    response = fetch("/blocked")
    assert response.status_code == 403
    assert response["X-Request-ID"]
    assert count(captured, "GET", "<unmatched>", "403") == 1


def test_raise_request_exception_client_still_records(captured: CapturedTelemetry) -> None:
    """With Django's default test client (re-raising the view's exception) the 500 is recorded."""
    with pytest.raises(RuntimeError, match="kaboom"):
        Client().get("/boom")
    assert count(captured, "GET", "/boom", "500") == 1
