"""piccolo-admin 1.14.0 (FastAPI 0.165 / Starlette 1.10) under ``uvicorn --workers 2``."""

from __future__ import annotations

import functools
import subprocess
import textwrap
from pathlib import Path

import httpx
import pytest

from ._harness import Normalizer, Req, app_venv, assert_report, check_all, run_app

NAME = "piccolo-admin"

PICCOLO_CONF = """
    from piccolo.conf.apps import AppRegistry
    from piccolo.engine.sqlite import SQLiteEngine

    DB = SQLiteEngine(path="demo.sqlite")
    APP_REGISTRY = AppRegistry(apps=[])
"""


def _csrf(client: httpx.Client) -> dict[str, str]:
    """piccolo-api's CSRF middleware: the ``csrftoken`` cookie echoed in ``X-CSRFToken``."""
    return {"X-CSRFToken": client.cookies.get("csrftoken") or ""}


LOGIN = {"username": "piccolo", "password": "piccolo123"}  # the demo's user (example/tables.py)

TRAFFIC = [
    Req("GET", "/"),  # the single-page app (admin root route)
    Req("GET", "/public/meta/"),  # sets the csrftoken cookie
    Req("GET", "/api/tables/"),  # 401: the /api mount's AuthenticationMiddleware
    Req("POST", "/public/login/", json=LOGIN, headers=_csrf),
    Req("GET", "/api/tables/"),
    Req("GET", "/api/tables/grouped/"),
    Req("GET", "/api/tables/movie/"),
    Req("GET", "/api/tables/movie/?__page=2&__order=-box_office"),
    Req("GET", "/api/tables/movie/1/"),
    Req("GET", "/api/tables/movie/2/"),
    Req("GET", "/api/tables/director/3/"),
    Req("GET", "/api/tables/movie/999/"),  # 404 from the CRUD endpoint
    Req("GET", "/api/tables/movie/abc/"),  # 400
    Req("GET", "/api/tables/movie/schema/"),
    Req("GET", "/api/tables/movie/ids/"),
    Req("GET", "/api/tables/movie/count/"),
    Req("GET", "/api/forms/"),
    Req("GET", "/api/forms/calculator/"),
    Req("GET", "/api/forms/calculator/schema/"),
    Req("GET", "/api/forms/nope/"),  # 404 from the form endpoint
    Req("POST", "/api/forms/calculator/", json={"number_1": 2, "number_2": 3}, headers=_csrf),
    Req("POST", "/api/forms/calculator/", json={"number_1": "x"}, headers=_csrf),  # 422
    Req("POST", "/api/tables/movie/", json={}, headers=_csrf),  # 422 from the database
    Req("GET", "/api/user/"),
    Req("GET", "/api/links/"),
    Req("GET", "/api/tables"),  # 307: the inner router's slash redirect
    Req("DELETE", "/api/tables/", headers=_csrf),  # 405
    Req("PATCH", "/api/user/", headers=_csrf),  # 405
    Req("PUT", "/public/meta/", headers=_csrf),  # 405
    Req("GET", "/public/translations/"),
    Req("GET", "/public/translations/en/"),
    Req("GET", "/api/tables/nope/"),  # the inner router matches nothing: 404
    Req("GET", "/api/nothing/here/42"),
    Req("GET", "/assets/nope.js"),  # the StaticFiles mount: 404
    Req("GET", "/nope"),  # the outer router matches nothing
    Req("GET", "/wp-login.php"),
    Req("GET", "/api/openapi.json"),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's SQLite database, created and filled by piccolo-admin's own example code."""
    bin_dir = app_venv(NAME)
    directory = tmp_path_factory.mktemp("piccolo-admin")
    (directory / "piccolo_conf.py").write_text(textwrap.dedent(PICCOLO_CONF))
    subprocess.run(
        [str(bin_dir / "python"), "-c",
         "from piccolo_admin.example.tables import create_schema, populate_data; "
         "create_schema(); populate_data()"],
        cwd=directory, env={"PYTHONPATH": str(directory), "PATH": str(bin_dir)}, check=True,
    )  # fmt: skip
    return directory


NORMALIZER = Normalizer(
    # piccolo-api's CSRF middleware sets a fresh random csrftoken cookie on responses, and the
    # login a fresh session id: their values differ per run.
    cookies=frozenset({"csrftoken", "id"}),
)


def test_piccolo_admin_under_uvicorn_two_workers(prepared: Path, tmp_path: Path) -> None:
    """piccolo-admin 1.14.0's own example app (``piccolo_admin.example.app:APP``, an
    ``AdminRouter``: a FastAPI app that mounts ``/api`` as piccolo-api's
    ``AuthenticationMiddleware`` around a private FastAPI sub-app, ``/public`` and a
    ``StaticFiles`` ``/assets``) on its SQLite demo data, under
    ``telemetry run -- uvicorn --workers 2``. Ground truth: in the live workers, the Starlette /
    FastAPI route whose ``handle`` ran, prefixed by the ``Mount`` paths the request went through
    (``groundtruth/sitecustomize.py``); nothing matched -> ``<unmatched>``."""

    def command(port: int) -> list[str]:
        return ["uvicorn", "piccolo_admin.example.app:APP", "--workers", "2",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip

    run = functools.partial(run_app, name=NAME, command=command, prepared=prepared, traffic=TRAFFIC)
    bare = run(workdir=tmp_path / "bare", launched=False)
    launched = run(workdir=tmp_path / "launched", launched=True)
    assert_report(check_all(f"{NAME} 1.14.0 / uvicorn --workers 2", bare, launched, NORMALIZER))
