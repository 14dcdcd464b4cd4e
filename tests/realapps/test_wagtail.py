"""wagtail 8.0.1 (Django 5.2): the project ``wagtail start`` generates, under gunicorn and
uvicorn with 2 workers each."""

from __future__ import annotations

import functools
import subprocess
import textwrap
from pathlib import Path

import pytest

from ._harness import Normalizer, Req, app_venv, assert_report, check_all, run_app

NAME = "wagtail"

# The generated project's production settings, with what a deployment supplies (a secret key,
# the allowed host) and plain static files storage: the production default, the manifest storage,
# needs `collectstatic` (about a minute here), and without it every page is a 500.
SETTINGS = """
    from .production import *  # noqa: F403

    SECRET_KEY = "realapps-test-only"
    ALLOWED_HOSTS = ["127.0.0.1"]
    STORAGES["staticfiles"]["BACKEND"] = (  # noqa: F405
        "django.contrib.staticfiles.storage.StaticFilesStorage"
    )
"""

# Django's own ASGI entry point (what `django-admin startproject` writes; wagtail's template
# ships only wsgi.py).
ASGI = """
    import os

    from django.core.asgi import get_asgi_application

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings.realapps")
    application = get_asgi_application()
"""

TRAFFIC = [
    Req("GET", "/"),  # the home page, served by wagtail's catch-all page route
    Req("GET", "/search/?query=welcome"),
    Req("GET", "/search/?query=welcome&page=abc"),
    Req("GET", "/search"),  # 301: CommonMiddleware's APPEND_SLASH (no route matches /search)
    Req("GET", "/admin/"),  # 302 to the login page
    Req("GET", "/admin/pages/3/"),  # 302
    Req("GET", "/admin/pages/3/edit/"),  # 302
    Req("GET", "/admin/images/"),  # 302
    Req("GET", "/admin/login/"),
    Req("GET", "/django-admin/"),  # 302
    Req("GET", "/django-admin/auth/user/1/change/"),  # 302
    Req("GET", "/django-admin/logout/"),  # 405: Django's LogoutView is POST only
    Req("POST", "/search/"),  # 403: CSRF (after URL resolution)
    Req("POST", "/admin/login/"),  # 403: CSRF
    Req("DELETE", "/"),  # 403: CSRF
    Req("GET", "/nope/"),  # 404 from wagtail's page serving (the catch-all matched)
    Req("GET", "/a/b/c/"),
    Req("GET", "/documents/1/a.pdf"),  # 404 from the document view
    Req("GET", "/static/x.css"),  # no route (static files are not served by Django here)
    Req("GET", "/x.php"),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``wagtail start mysite``, migrated to SQLite with wagtail's own migrations."""
    bin_dir = app_venv(NAME)
    directory = tmp_path_factory.mktemp("wagtail") / "mysite"
    directory.mkdir()
    env = {"PATH": str(bin_dir), "DJANGO_SETTINGS_MODULE": "mysite.settings.realapps"}
    subprocess.run([str(bin_dir / "wagtail"), "start", "mysite", str(directory)], check=True,
                   env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    (directory / "mysite" / "settings" / "realapps.py").write_text(textwrap.dedent(SETTINGS))
    (directory / "mysite" / "asgi.py").write_text(textwrap.dedent(ASGI))
    subprocess.run([str(bin_dir / "python"), "manage.py", "migrate", "-v0"], cwd=directory,
                   env=env, check=True)  # fmt: skip
    return directory


NORMALIZER = Normalizer(
    # Django's never_cache (admin views) sets Expires to the current time.
    headers=frozenset({"expires"}),
    # Django rotates the CSRF token: a fresh csrftoken cookie (its expiry date is the clock's)
    # and a fresh masked token in the login form and in wagtail's admin config JSON.
    cookies=frozenset({"csrftoken"}),
    body=[
        (r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken"'),
        (r'"CSRF_TOKEN": "[^"]+"', '"CSRF_TOKEN": ""'),
    ],
    # Not excluded: wagtail's `?v=<hash>` on admin static URLs hashes INSTALLED_APPS, which the
    # launcher extends with telemetry_web.django: that difference is the launcher's doing.
)

SERVERS = {
    "gunicorn-w-2": lambda port: [
        "gunicorn", "-w", "2", "--bind", f"127.0.0.1:{port}", "mysite.wsgi",
    ],
    "uvicorn-workers-2": lambda port: [
        "uvicorn", "mysite.asgi:application", "--workers", "2", "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log",
    ],
}  # fmt: skip


@pytest.mark.parametrize("server", list(SERVERS))
def test_wagtail(prepared: Path, tmp_path: Path, server: str) -> None:
    """wagtail 8.0.1's generated project (``wagtail start``; wagtail admin, Django admin,
    documents, search and page serving through ``include()``s and a ``re_path`` catch-all), under
    ``telemetry run -- gunicorn -w 2 mysite.wsgi`` and ``-- uvicorn --workers 2 mysite.asgi``.
    Ground truth: ``resolver_match.route`` from Django's ``BaseHandler.resolve_request`` in the
    live workers, rendered as the README documents Django labels; a ``Resolver404`` is
    ``<unmatched>``."""
    env = {"DJANGO_SETTINGS_MODULE": "mysite.settings.realapps"}
    run = functools.partial(
        run_app, name=NAME, command=SERVERS[server], prepared=prepared, traffic=TRAFFIC, env=env
    )
    bare = run(workdir=tmp_path / "bare", launched=False)
    launched = run(workdir=tmp_path / "launched", launched=True)
    assert_report(check_all(f"{NAME} 8.0.1 / {server}", bare, launched, NORMALIZER))
