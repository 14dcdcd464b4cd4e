"""datasette 0.65.5 (its own ASGI router) under its own CLI and under ``uvicorn --workers 2``."""

from __future__ import annotations

import functools
import importlib.util
import sqlite3
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from ._harness import Normalizer, Req, assert_report, check_all, run_app

NAME = "datasette"
_RESOLVER = Path(__file__).parent / "datasette_routes" / "telemetry_web_datasette_routes.py"


def _template_for_pattern() -> Callable[[str], str]:
    spec = importlib.util.spec_from_file_location("telemetry_web_datasette_routes", _RESOLVER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.template_for_pattern  # type: ignore[no-any-return]


TRAFFIC = [
    Req("GET", "/"),
    Req("GET", "/.json"),
    Req("GET", "/fixtures"),
    Req("GET", "/fixtures.json"),
    Req("GET", "/fixtures/books"),
    Req("GET", "/fixtures/books.json"),
    Req("GET", "/fixtures/books.json?_shape=array&_nl=on"),
    Req("GET", "/fixtures/books.csv?_stream=1"),  # streamed CSV
    Req("GET", "/fixtures/books/1"),
    Req("GET", "/fixtures/books/2.json"),
    Req("GET", "/fixtures/tags/scifi.json"),
    Req("GET", "/fixtures/books/99.json"),  # 404 from the row view
    Req("GET", "/fixtures/nope"),  # 404 from the table view
    Req("GET", "/fixtures?sql=select+title+from+books"),
    Req("GET", "/fixtures.json?sql=select+nonsense"),  # 400
    Req("GET", "/fixtures/books.json?_size=nope"),  # 400
    Req("GET", "/fixtures.db"),  # 403: downloads of mutable databases are off
    Req("GET", "/:memory:"),  # 301
    Req("GET", "/-/config"),  # 301
    Req("GET", "/-/versions.json"),
    Req("GET", "/-/plugins.json"),
    Req("GET", "/-/static/app.css"),
    Req("GET", "/-/static/nope.css"),  # 404
    Req("GET", "/favicon.ico"),
    Req("POST", "/fixtures/books"),  # 500 (no cookies: asgi-csrf lets it through)
    Req("DELETE", "/fixtures/books"),  # 405
    Req("PUT", "/-/versions.json"),  # 405
    Req("GET", "/nope/x/y/z/w"),  # matches no route
    Req("GET", "/wp-login.php/a/b/c"),
]

# The uvicorn deployment of the same database through datasette's Python API.
ASGI_MODULE = """
    from datasette.app import Datasette

    app = Datasette(["fixtures.db"]).app()
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("datasette")
    with sqlite3.connect(directory / "fixtures.db") as db:
        db.executescript(
            """
            CREATE TABLE books (id INTEGER PRIMARY KEY, title TEXT, year INT);
            INSERT INTO books (title, year) VALUES
                ('Dune', 1965), ('Neuromancer', 1984), ('Hyperion', 1989);
            CREATE TABLE tags (name TEXT PRIMARY KEY);
            INSERT INTO tags VALUES ('scifi'), ('classic');
            """
        )
    (directory / "datasette_asgi.py").write_text(textwrap.dedent(ASGI_MODULE))
    return directory


NORMALIZER = Normalizer(
    body=[
        # datasette prints how long each query took in its HTML and JSON
        (r"[0-9.]+(e-\d+)?ms", "<t>ms"),
        (r'"query_ms": [0-9.e-]+', '"query_ms": <t>'),
    ],
)

SERVERS = {
    # datasette's own CLI: `datasette serve` calls uvicorn.run(app) in one process.
    "datasette-serve-1-process": lambda port: [
        "datasette", "serve", "fixtures.db", "--host", "127.0.0.1", "--port", str(port),
    ],
    "uvicorn-workers-2": lambda port: [
        "uvicorn", "datasette_asgi:app", "--workers", "2", "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log",
    ],
}  # fmt: skip


@pytest.mark.parametrize("server", list(SERVERS))
def test_datasette(prepared: Path, tmp_path: Path, server: str) -> None:
    """datasette 0.65.5 on a small SQLite database the test creates, served by its own CLI
    (``telemetry run -- datasette serve``: one process, ``uvicorn.run(app)``) and by
    ``telemetry run -- uvicorn --workers 2`` (``Datasette([...]).app()``).

    Ground truth: the regex of the first ``(regex, view)`` pair ``DatasetteRouter`` matched in the
    live process, as a template (``/{database}/{table}[.{format}]``). Datasette routes by
    regular expressions: a Datasette user expects table- and database-shaped labels, not the
    regex, not ``<unmatched>`` for every request, and never ``/fixtures/books``. No released
    package gives telemetry-web that, so the suite ships a small resolver distribution
    (``datasette_routes/``, installed in datasette's venv) registered in telemetry-web's
    ``telemetry_web.route_resolvers`` entry-point group; its ``template_for_pattern`` also renders
    the ground truth. Paths no route matches are ``<unmatched>``."""
    command = SERVERS[server]
    run = functools.partial(run_app, name=NAME, command=command, prepared=prepared, traffic=TRAFFIC)
    bare = run(workdir=tmp_path / "bare", launched=False)
    launched = run(workdir=tmp_path / "launched", launched=True)
    report = check_all(
        f"{NAME} 0.65.5 / {server}", bare, launched, NORMALIZER, template=_template_for_pattern()
    )
    assert_report(report)
