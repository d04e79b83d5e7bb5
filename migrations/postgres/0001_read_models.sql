-- Read models built by projections/; all of them can be dropped and rebuilt with `tocsin replay`.
CREATE TABLE IF NOT EXISTS projection_tracking (
    projection TEXT NOT NULL,
    upstream TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (projection, upstream)
);

CREATE TABLE IF NOT EXISTS integrations (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    token TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    team_id TEXT,
    description_short TEXT,
    templates TEXT NOT NULL,
    template_revision INTEGER NOT NULL,
    default_route_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS integrations_token_hash ON integrations (token_hash);

CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS heartbeats (
    integration_uuid TEXT PRIMARY KEY,
    last_heartbeat_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS alert_groups (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    integration_id TEXT NOT NULL,
    route_id TEXT NOT NULL,
    distinction TEXT NOT NULL,
    title TEXT NOT NULL,
    source_link TEXT,
    state TEXT NOT NULL,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    resolved INTEGER NOT NULL DEFAULT 0,
    silenced INTEGER NOT NULL DEFAULT 0,
    alerts_count INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT,
    resolved_at TEXT,
    resolved_by TEXT,
    silenced_at TEXT,
    silenced_until TEXT,
    last_alert_id TEXT,
    template_revision INTEGER NOT NULL,
    is_demo INTEGER NOT NULL DEFAULT 0,
    position BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_groups_started ON alert_groups (started_at DESC, position DESC);
CREATE INDEX IF NOT EXISTS alert_groups_integration ON alert_groups (integration_id, started_at DESC);
CREATE INDEX IF NOT EXISTS alert_groups_state ON alert_groups (state, started_at DESC);

CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    alert_group_id TEXT NOT NULL,
    integration_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    is_resolve_signal INTEGER NOT NULL,
    payload TEXT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_group ON alerts (alert_group_id, position DESC);
CREATE INDEX IF NOT EXISTS alerts_position ON alerts (position DESC);

CREATE TABLE IF NOT EXISTS timeline (
    alert_group_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    seq INTEGER NOT NULL,
    type INTEGER NOT NULL,
    action TEXT NOT NULL,
    author TEXT,
    created_at TEXT NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (alert_group_id, position, seq)
);

CREATE TABLE IF NOT EXISTS deadlines (
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    due_at TEXT NOT NULL,
    fence INTEGER NOT NULL,
    PRIMARY KEY (kind, subject)
);
CREATE INDEX IF NOT EXISTS deadlines_due ON deadlines (due_at);
