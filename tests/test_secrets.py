"""Secrets never reach an output: spans (attributes, status, events), JSON log lines, the SQLite
store and ``/metrics``, through a real ASGI app, the real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from telemetry_web import Telemetry, TelemetryMiddleware
from telemetry_web.instrumentors import HttpxInstrumentor, RedisInstrumentor, SQLAlchemyInstrumentor

from .instrumentors._support import POSTGRES_URL, REDIS_URL, require_service

CARD = "4111111111111111"


TABLES: dict[int, str] = {}


@pytest.fixture
def postgres() -> Iterator[sa.Engine]:
    """An engine on the machine's PostgreSQL with a table whose column is unique."""
    host_port = POSTGRES_URL.rsplit("@", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    require_service("PostgreSQL", host, int(port or 5432))
    engine = sa.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    table = f"secrets_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {table} (pan text UNIQUE)")
    TABLES[id(engine)] = table
    yield engine
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    engine.dispose()


def _telemetry(tmp_path: Path, spans: InMemorySpanExporter, **http: Any) -> Telemetry:
    """JSON lines to a file, spans in memory and in the store, nothing else."""
    return Telemetry(
        config={
            "service": "secrets",
            "logging": {"sinks": {"console": False, "file": {"path": str(tmp_path / "app.log")}}},
            "store": {"enabled": "true", "path": str(tmp_path / "store.db")},
            "http": http,
        },
        span_exporters=[spans],
        use_env=False,
    )


def _outputs(
    tel: Telemetry, spans: InMemorySpanExporter, tmp_path: Path, metrics: str
) -> dict[str, str]:
    """Every output as text: span JSON, the log file, the store's bytes, /metrics."""
    tel.shutdown()
    finished = spans.get_finished_spans()
    return {
        "spans": "\n".join(s.to_json() for s in finished),
        "logs": (tmp_path / "app.log").read_text(),
        "store": b"".join(p.read_bytes() for p in tmp_path.glob("store.db*")).decode("latin-1"),
        "metrics": metrics,
    }


def _leaks(outputs: dict[str, str], secrets: dict[str, str]) -> list[str]:
    found = []
    for where, text in outputs.items():
        for name, secret in secrets.items():
            if secret in text or json.dumps(secret)[1:-1] in text:
                found.append(f"{name} in {where}")
    return found


# --- SQLAlchemy errors through a real ASGI app ---------------------------------------------------


def test_database_errors_leak_no_literal_or_parameter(tmp_path: Path, postgres: sa.Engine) -> None:
    """A real unique violation (the card as a bound parameter) and a real syntax error (card and
    marker as literals), uncaught in an ASGI app: neither value reaches the spans (attributes,
    status, exception events), the JSON log lines nor the store file; the sanitised statement
    and the useful part of the error stay."""
    table = TABLES[id(postgres)]
    literal = f"zz-literal-{uuid.uuid4().hex[:6]}"
    param = f"card={CARD} zz-param-{uuid.uuid4().hex[:6]}"
    syntax_error = f"SELCT '{literal}', 'card={CARD}'"

    def insert(request: Request) -> Response:
        with postgres.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} (pan) VALUES (:pan)"), {"pan": param})
        return PlainTextResponse("inserted")

    def broken(request: Request) -> Response:
        with postgres.begin() as conn:
            conn.execute(sa.text(syntax_error))
        return PlainTextResponse("unreachable")

    spans = InMemorySpanExporter()
    tel = _telemetry(tmp_path, spans)
    instrumentor = SQLAlchemyInstrumentor(telemetry=tel)
    instrumentor.instrument(engine=postgres)
    try:
        app = Starlette(routes=[Route("/insert", insert), Route("/broken", broken)])
        wrapped = TelemetryMiddleware(app, telemetry=tel)

        async def drive() -> tuple[list[int], str]:
            transport = httpx.ASGITransport(app=wrapped, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                codes = [
                    (await client.get(p)).status_code for p in ("/insert", "/insert", "/broken")
                ]
                return codes, (await client.get("/metrics")).text

        codes, metrics = asyncio.run(drive())
        assert codes == [200, 500, 500]
        tel.flush()
        assert postgres.hide_parameters is True  # SQLAlchemy's own switch, on while instrumented
        server = [s for s in spans.get_finished_spans() if s.status.description]
        descriptions = " ".join(s.status.description or "" for s in server)
        assert "UniqueViolation" in descriptions
        assert "Key (pan)=(REDACTED)" in descriptions
        assert "SyntaxError" in descriptions
        assert "LINE 1: REDACTED" in descriptions
        texts = [dict(s.attributes or {}).get("db.query.text") for s in spans.get_finished_spans()]
        assert "SELCT ?, ?" in texts  # the client span keeps the sanitised statement
        outputs = _outputs(tel, spans, tmp_path, metrics)
    finally:
        instrumentor.uninstrument()
    assert postgres.hide_parameters is False  # restored
    assert "[parameters: REDACTED]" not in outputs["logs"]  # hide_parameters: none to scrub
    assert "[SQL: SELCT ?, ?]" in outputs["logs"]
    assert _leaks(outputs, {"card": CARD, "literal": literal, "param": param[-15:]}) == []
    lines = [json.loads(line) for line in outputs["logs"].splitlines()]
    errors = [line for line in lines if line.get("status") == 500]
    assert len(errors) == 2
    assert all("exception" in line for line in errors)


# --- two dozen planted secrets -------------------------------------------------------------


def _planted() -> dict[str, str]:
    tag = uuid.uuid4().hex[:6]
    names = [
        "authorization", "cookie", "api_key_header", "query_token", "query_encoded",
        "query_api_key", "query_client_secret", "query_jwt", "query_sessionid", "client_sig",
        "client_userinfo", "client_error_key", "sql_literal", "redis_token", "redis_password",
        "log_password", "log_nested", "log_bearer", "exception", "set_cookie",
    ]  # fmt: skip
    secrets = {name: f"pl{index:02d}{tag}x" for index, name in enumerate(names)}
    secrets.update(
        card_sql="5555555555554444", card_redis="4012888888881881",
        card_log="6011111111111117", card_exception="378282246310005",
    )  # fmt: skip
    return secrets


def test_planted_secrets_reach_no_output(tmp_path: Path, postgres: sa.Engine) -> None:
    """Two dozen secrets planted in headers, query strings, cookies, outbound URLs, SQL, Redis
    arguments, log fields and an exception message: none is found in any span, the JSON log
    lines, the store file or /metrics."""
    import redis

    require_service("Redis", "127.0.0.1", 6379)
    s = _planted()
    outbound = httpx.Client(
        transport=httpx.MockTransport(
            lambda r: httpx.Response(404 if "fail" in r.url.path else 200)
        )
    )
    cache = redis.Redis.from_url(REDIS_URL)
    key = f"secrets:{s['redis_token'][:6]}"

    def work(request: Request) -> Response:
        log = tel.get_logger("app")
        outbound.get(f"https://user:{s['client_userinfo']}@api.example/v1?sig={s['client_sig']}")
        try:
            outbound.get(f"https://api.example/fail?key={s['client_error_key']}").raise_for_status()
        except httpx.HTTPStatusError as exc:
            log.warning("upstream failed", error=str(exc))
        with postgres.connect() as conn:
            literal = f"SELECT '{s['sql_literal']}', '{s['card_sql']}'"
            conn.execute(sa.text(literal))
        cache.set(f"{key}:api_token", s["redis_token"], ex=30)
        cache.hset(f"{key}:user", mapping={"password": s["redis_password"], "n": "1"})
        cache.set(f"{key}:note", f"card {s['card_redis']}", ex=30)
        cache.delete(f"{key}:user")
        log.info(
            "planted",
            password=s["log_password"],
            nested={"deeper": [{"refreshToken": s["log_nested"]}]},
            note=f"Authorization: Bearer {s['log_bearer']} paid with {s['card_log']}",
        )
        raise RuntimeError(f"login failed: password={s['exception']} card {s['card_exception']}")

    def cookie(request: Request) -> Response:
        response = PlainTextResponse("ok")
        response.set_cookie("sid", s["set_cookie"])
        return response

    spans = InMemorySpanExporter()
    tel = _telemetry(
        tmp_path,
        spans,
        capture_headers={
            "request": ["Authorization", "Cookie", "X-Api-Key", "User-Agent"],
            "response": ["Set-Cookie", "Content-Type"],
        },
    )
    sqlalchemy_instrumentor = SQLAlchemyInstrumentor(telemetry=tel)
    redis_instrumentor = RedisInstrumentor(telemetry=tel, record_arguments=True)
    httpx_instrumentor = HttpxInstrumentor(telemetry=tel)
    sqlalchemy_instrumentor.instrument(engine=postgres)
    redis_instrumentor.instrument(client=cache)
    httpx_instrumentor.instrument(client=outbound)
    try:
        app = Starlette(routes=[Route("/work", work), Route("/cookie", cookie)])
        wrapped = TelemetryMiddleware(app, telemetry=tel)
        query = (
            f"token={s['query_token']}&%74oken={s['query_encoded']}&api%5Fkey={s['query_api_key']}"
            f"&client_secret={s['query_client_secret']}&JWT={s['query_jwt']}"
            f"&sessionid={s['query_sessionid']}&page=2"
        )
        headers = {
            "Authorization": f"Bearer {s['authorization']}",
            "Cookie": f"session={s['cookie']}",
            "X-Api-Key": s["api_key_header"],
        }

        async def drive() -> tuple[list[int], str]:
            transport = httpx.ASGITransport(app=wrapped, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                first = await client.get(f"/work?{query}", headers=headers)
                second = await client.get("/cookie")
                metrics = (await client.get("/metrics")).text
                return [first.status_code, second.status_code], metrics

        codes, metrics = asyncio.run(drive())
        assert codes == [500, 200]
        tel.flush()
        names = {span.name for span in spans.get_finished_spans()}
        assert {"GET /work", "GET /cookie", "GET", "SELECT test", "SET", "HSET"} <= names
        outputs = _outputs(tel, spans, tmp_path, metrics)
    finally:
        sqlalchemy_instrumentor.uninstrument()
        redis_instrumentor.uninstrument()
        httpx_instrumentor.uninstrument()
        outbound.close()
        cache.close()
    assert len(s) >= 20
    assert _leaks(outputs, s) == []
    # What is kept: the redacted shapes, so an operator still sees what happened.
    assert "page=2" in outputs["spans"]
    assert "REDACTED" in outputs["spans"]
    assert "planted" in outputs["logs"]
    assert "login failed" in outputs["logs"]


# --- the rules themselves --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("page=2&sort=asc", "page=2&sort=asc"),
        ("token=a&password=b&secret=c&key=d&signature=e&code=f",
         "token=REDACTED&password=REDACTED&secret=REDACTED&key=REDACTED&signature=REDACTED"
         "&code=REDACTED"),
        ("apikey=a&auth=b&jwt=c&sig=d&sessionid=e&passwd=f&credentials=g&client_secret=h",
         "apikey=REDACTED&auth=REDACTED&jwt=REDACTED&sig=REDACTED&sessionid=REDACTED"
         "&passwd=REDACTED&credentials=REDACTED&client_secret=REDACTED"),
        ("accessToken=a&MYSECRET=b&db_password=c&X-Amz-Security-Token=d",
         "accessToken=REDACTED&MYSECRET=REDACTED&db_password=REDACTED"
         "&X-Amz-Security-Token=REDACTED"),
        ("%74oken=a&api%5Fkey=b&Api_Key=c&TOKEN=d",
         "%74oken=REDACTED&api%5Fkey=REDACTED&Api_Key=REDACTED&TOKEN=REDACTED"),
        ("tokens=3&secretary=ada&monkey=m&barcode=x&author=me",
         "tokens=3&secretary=ada&monkey=m&barcode=x&author=me"),
        ("flag&token=&q=a%20b", "flag&token=REDACTED&q=a%20b"),
    ],
)  # fmt: skip
def test_query_rules(query: str, expected: str) -> None:
    """Default query rules: the widened names, names containing token/secret/password (not
    followed by another letter), percent-encoded and any-case names; the rest kept verbatim."""
    from telemetry_web._redaction import QueryRedactor

    assert QueryRedactor()(query) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /orders/42 took 12ms", "GET /orders/42 took 12ms"),
        ("paid with 4111-1111-1111-1111", "paid with REDACTED"),
        ("order 1234567812345678", "order 1234567812345678"),  # not a Luhn number
        ("Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.c2ln", "Authorization: REDACTED REDACTED"),
        ("connect to postgresql://app:pw@db/orders", "connect to postgresql://REDACTED:REDACTED@db/orders"),
        ("for url 'https://x/v1?key=abc&page=2'", "for url 'https://x/v1?key=REDACTED&page=2'"),
        ('{"client_secret": "abc"}', '{"client_secret": "REDACTED"}'),
        ("Duplicate entry 'ada@x.org' for key 'email'",
         "Duplicate entry 'REDACTED' for key 'email'"),
        ('invalid input syntax for type uuid: "s3cr3t"',
         'invalid input syntax for type uuid: "REDACTED"'),
        ("DETAIL:  Failing row contains (1, s3cr3t).", "DETAIL:  REDACTED"),
        ("CONTEXT:  SQL statement \"insert into t values ('s3cr3t')\"", "CONTEXT: REDACTED"),
    ],
)  # fmt: skip
def test_text_rules(text: str, expected: str) -> None:
    """Value patterns: card numbers (Luhn), credentials, URLs' userinfo and query values,
    ``name=value`` pairs and what databases echo of statements."""
    from telemetry_web._redaction import scrub_text

    assert scrub_text(text) == expected
