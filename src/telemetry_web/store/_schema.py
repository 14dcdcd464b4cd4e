"""The store's tables, indexes and views (schema 4; ``_db.SCHEMA_VERSION``): ``span_rows`` and
``log_rows`` with their indexes, the ``spans``/``logs`` views with the older columns, the metric
history and the alerts. Each statement is ``IF NOT EXISTS``: run on every new connection's file
that is older than the current version."""

from __future__ import annotations

__all__ = ["SCHEMA"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS strings (
    id INTEGER PRIMARY KEY,
    value TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY,
    attributes TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS span_rows (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    parent_id BLOB,
    name INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    service INTEGER NOT NULL,
    route INTEGER,
    http_status INTEGER,
    start_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    status INTEGER NOT NULL,
    status_message TEXT,
    attributes BLOB,
    events BLOB,
    resource INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS span_rows_trace ON span_rows (substr(trace_id, 1, 8));
CREATE INDEX IF NOT EXISTS span_rows_start ON span_rows (start_ns);
CREATE INDEX IF NOT EXISTS span_rows_errors ON span_rows (start_ns) WHERE status = 2;
CREATE INDEX IF NOT EXISTS span_rows_route
    ON span_rows (route, service, duration_ns, status, start_ns) WHERE kind = 1;
CREATE TABLE IF NOT EXISTS log_rows (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    level TEXT,
    level_no INTEGER NOT NULL,
    logger INTEGER,
    service INTEGER,
    event TEXT,
    trace_id BLOB,
    span_id BLOB,
    request_id BLOB,
    fields BLOB
);
CREATE INDEX IF NOT EXISTS log_rows_trace ON log_rows (substr(trace_id, 1, 8))
    WHERE trace_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS log_rows_ts ON log_rows (ts);
CREATE INDEX IF NOT EXISTS log_rows_problems ON log_rows (ts) WHERE level_no >= 30;
CREATE VIEW IF NOT EXISTS spans AS SELECT s.id AS id, lower(hex(s.trace_id)) AS trace_id,
    lower(hex(s.span_id)) AS span_id,
    CASE WHEN s.parent_id IS NOT NULL THEN lower(hex(s.parent_id)) END AS parent_id,
    n.value AS name,
    CASE s.kind WHEN 0 THEN 'internal' WHEN 1 THEN 'server' WHEN 2 THEN 'client'
        WHEN 3 THEN 'producer' ELSE 'consumer' END AS kind,
    v.value AS service, r.value AS route, s.http_status AS http_status,
    s.start_ns AS start_ns, s.duration_ns AS duration_ns,
    CASE s.status WHEN 0 THEN 'unset' WHEN 1 THEN 'ok' ELSE 'error' END AS status,
    s.status_message AS status_message, s.attributes AS attributes, s.events AS events,
    res.attributes AS resource
    FROM span_rows s JOIN strings n ON n.id = s.name JOIN strings v ON v.id = s.service
    LEFT JOIN strings r ON r.id = s.route JOIN resources res ON res.id = s.resource;
CREATE VIEW IF NOT EXISTS logs AS SELECT l.id AS id, l.ts AS ts,
    COALESCE(l.level, CASE l.level_no WHEN 10 THEN 'debug' WHEN 20 THEN 'info'
        WHEN 30 THEN 'warning' WHEN 40 THEN 'error' ELSE 'critical' END) AS level,
    l.level_no AS level_no, g.value AS logger, v.value AS service, l.event AS event,
    CASE WHEN typeof(l.trace_id) = 'blob' THEN lower(hex(l.trace_id)) ELSE l.trace_id END
        AS trace_id,
    CASE WHEN typeof(l.span_id) = 'blob' THEN lower(hex(l.span_id)) ELSE l.span_id END
        AS span_id,
    CASE WHEN typeof(l.request_id) = 'blob' THEN lower(hex(l.request_id))
        ELSE l.request_id END AS request_id,
    l.fields AS fields
    FROM log_rows l LEFT JOIN strings g ON g.id = l.logger LEFT JOIN strings v ON v.id = l.service;
CREATE TABLE IF NOT EXISTS metric_series (
    id INTEGER PRIMARY KEY,
    family TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    labels TEXT NOT NULL,
    help TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE INDEX IF NOT EXISTS metric_series_family ON metric_series (family);
CREATE TABLE IF NOT EXISTS metric_points (
    series_id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_snapshots (
    ts INTEGER PRIMARY KEY,
    samples INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    annotations TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL,
    active_at REAL NOT NULL,
    fired_at REAL,
    resolved_at REAL,
    notified_at REAL,
    evaluated_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_active ON alerts (fingerprint)
    WHERE state IN ('pending', 'firing');
CREATE INDEX IF NOT EXISTS alerts_state ON alerts (state, active_at);
"""
