"""The SQL sanitizer: literals become ``?``, comments go, everything else is kept."""

from __future__ import annotations

import pytest

from telemetry_web.instrumentors._sql import MAX_QUERY_TEXT, sanitize

STANDARD = [
    # (statement, sanitized text, operation)
    ("SELECT * FROM users WHERE id = 42", "SELECT * FROM users WHERE id = ?", "SELECT"),
    ("select name from t where name = 'ada'", "select name from t where name = ?", "SELECT"),
    ("SELECT 'it''s' , 'x'", "SELECT ? , ?", "SELECT"),
    ("SELECT E'a\\'b', 'c\\' AS d", "SELECT ?, ? AS d", "SELECT"),
    ("SELECT $$secret$$, $fn$ body 'x' $fn$", "SELECT ?, ?", "SELECT"),
    ("SELECT 3.14, .5, 1e10, 2.5E-3, 0xFF, -7", "SELECT ?, ?, ?, ?, ?, -?", "SELECT"),
    ("SELECT X'0A', B'101', N'name', U&'d\\0061t'", "SELECT ?, ?, ?, ?", "SELECT"),
    ("SELECT t1.col2 FROM table1 t1", "SELECT t1.col2 FROM table1 t1", "SELECT"),
    ('SELECT "Column 7" FROM "Table 1"', 'SELECT "Column 7" FROM "Table 1"', "SELECT"),
    (
        "INSERT INTO t (a, b) VALUES (%(a)s, %(b)s)",
        "INSERT INTO t (a, b) VALUES (%(a)s, %(b)s)",
        "INSERT",
    ),
    ("UPDATE t SET a = $1 WHERE b = $2", "UPDATE t SET a = $1 WHERE b = $2", "UPDATE"),
    ("DELETE FROM t WHERE a = :a AND b = ?", "DELETE FROM t WHERE a = :a AND b = ?", "DELETE"),
    ("SELECT x::int, %s FROM t", "SELECT x::int, %s FROM t", "SELECT"),
    ("SELECT 1 -- user 'bob' 42\nFROM t", "SELECT ? FROM t", "SELECT"),
    ("/* app: 7 'x' */ SELECT a FROM t", "SELECT a FROM t", "SELECT"),
    ("INSERT INTO t VALUES ('unterminated secret", "INSERT INTO t VALUES (?", "INSERT"),
    ("SELECT a FROM t /* unterminated 'secret'", "SELECT a FROM t", "SELECT"),
    ("  SELECT\n\t a\n FROM   t  ", "SELECT a FROM t", "SELECT"),
    ("(SELECT 1) UNION (SELECT 2)", "(SELECT ?) UNION (SELECT ?)", "SELECT"),
    ("WITH a AS (SELECT 1) SELECT * FROM a", "WITH a AS (SELECT ?) SELECT * FROM a", "WITH"),
    ("begin", "begin", "BEGIN"),
    ("SAVEPOINT sa_savepoint_1", "SAVEPOINT sa_savepoint_1", "SAVEPOINT"),
    ("CREATE TABLE t (id INTEGER)", "CREATE TABLE t (id INTEGER)", "CREATE"),
    ("FROBNICATE everything", "FROBNICATE everything", "OTHER"),
    ("", "", "OTHER"),
]

BACKSLASH = [
    # MySQL and MariaDB: backslash escapes, "..." strings, # comments, `identifiers`
    ("SELECT * FROM t WHERE a = 'it\\'s secret'", "SELECT * FROM t WHERE a = ?", "SELECT"),
    ('SELECT "double quoted" FROM t', "SELECT ? FROM t", "SELECT"),
    ("SELECT `col1` FROM `table 2` # note 5\n", "SELECT `col1` FROM `table 2`", "SELECT"),
    ("SELECT _utf8mb4'x', X'0A'", "SELECT ?, ?", "SELECT"),
]


@pytest.mark.parametrize(("statement", "text", "operation"), STANDARD)
def test_standard_sql(statement: str, text: str, operation: str) -> None:
    """Standard SQL (PostgreSQL, SQLite): each literal is one ``?``, the rest is kept."""
    assert sanitize(statement) == (text, operation)


@pytest.mark.parametrize(("statement", "text", "operation"), BACKSLASH)
def test_backslash_dialects(statement: str, text: str, operation: str) -> None:
    """MySQL-style strings with backslash escapes and double quotes are replaced whole."""
    assert sanitize(statement, backslash_escapes=True) == (text, operation)


def test_long_statements_are_truncated_and_not_cached() -> None:
    """A statement past the cache limit is still sanitized, and its text is cut short."""
    statement = "INSERT INTO t VALUES " + ", ".join(f"('secret{i}', {i})" for i in range(2000))
    text, operation = sanitize(statement)
    assert operation == "INSERT"
    assert len(text) == MAX_QUERY_TEXT
    assert text.endswith("...")
    assert "secret" not in text
    assert set(text.removeprefix("INSERT INTO t VALUES ").rstrip(".")) <= set("(?, )")


def test_recorded_parameters_keep_credentials_out() -> None:
    """Parameters named like credentials are ``REDACTED``; card numbers and bearer credentials
    in other values are scrubbed; positional parameters are scrubbed by value."""
    from telemetry_web.instrumentors._sql import parameter_attributes, parameters_for_log

    named = {
        "user_password": "hunter2",
        "api_token": "t-1",
        "name": "ada",
        "pan": "4111111111111111",
    }
    assert parameter_attributes(named) == {
        "db.query.parameter.user_password": "REDACTED",
        "db.query.parameter.api_token": "REDACTED",
        "db.query.parameter.name": "ada",
        "db.query.parameter.pan": "REDACTED",
    }
    assert parameters_for_log(["Bearer abcdefgh123", 7]) == ["Bearer REDACTED", "7"]
