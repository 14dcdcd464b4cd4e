"""httpbin 0.10.4 (Flask 3.1) under ``gunicorn -w 2``."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from ._harness import Normalizer, Req, assert_report, check_all, run_app

NAME = "httpbin"

TRAFFIC = [
    Req("GET", "/get?a=1"),
    Req("GET", "/status/200"),
    Req("GET", "/status/201"),
    Req("GET", "/status/204"),
    Req("GET", "/status/302"),
    Req("GET", "/status/404"),
    Req("GET", "/status/418"),
    Req("GET", "/status/500"),
    Req("GET", "/status/503"),
    Req("POST", "/status/502"),
    Req("GET", "/status/nope"),  # 400 from the view
    Req("GET", "/redirect/2"),  # 302
    Req("GET", "/relative-redirect/1"),
    Req("GET", "/absolute-redirect/1"),
    Req("GET", "/redirect-to?url=/get&status_code=307"),
    Req("GET", "/stream/5"),  # streamed JSON lines
    Req("GET", "/drip?numbytes=20&duration=0&delay=0&code=200"),  # streamed bytes
    Req("GET", "/range/64?chunk_size=16"),
    Req("GET", "/anything/orders/42"),
    Req("POST", "/anything/orders", data={"item": "book"}),
    Req("POST", "/post", json={"a": 1}),
    Req("GET", "/post"),  # 405
    Req("DELETE", "/get"),  # 405
    Req("PUT", "/status/200"),
    Req("GET", "/basic-auth/user/passwd"),  # 401
    Req("GET", "/bearer"),  # 401
    Req("GET", "/headers"),
    Req("GET", "/json"),
    Req("GET", "/html"),
    Req("GET", "/base64/aGVsbG8="),
    Req("GET", "/cookies/set?k=v"),  # 302
    Req("GET", "/nope"),  # no rule
    Req("GET", "/users/42/orders/7"),
    Req("GET", "/status"),  # no rule (status codes are required)
]

NORMALIZER = Normalizer(
    # Werkzeug builds a 405's Allow from a set: its order follows each process's string hash
    # seed (two bare runs differ too). The traffic avoids /uuid, /delay and /bytes (random).
    unordered=frozenset({"allow"}),
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("httpbin")


def test_httpbin_under_gunicorn_two_workers(prepared: Path, tmp_path: Path) -> None:
    """httpbin 0.10.4 (``httpbin:app``, a Flask app: statuses via ``/status/<codes>``,
    redirects, streamed ``/stream/<int:n>`` and ``/drip``, ``/anything/<path:anything>``) under
    ``telemetry run -- gunicorn -w 2 httpbin:app``. Ground truth: Flask's
    ``request.url_rule.rule`` when ``request_started`` fires in the live workers (a 405: the rule
    the same path matches under an allowed method, from the app's ``url_map``); no rule ->
    ``<unmatched>``."""

    def command(port: int) -> list[str]:
        return ["gunicorn", "-w", "2", "--bind", f"127.0.0.1:{port}", "httpbin:app"]

    run = functools.partial(run_app, name=NAME, command=command, prepared=prepared, traffic=TRAFFIC)
    bare = run(workdir=tmp_path / "bare", launched=False)
    launched = run(workdir=tmp_path / "launched", launched=True)
    assert_report(check_all(f"{NAME} 0.10.4 / gunicorn -w 2", bare, launched, NORMALIZER))
