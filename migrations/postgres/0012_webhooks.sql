-- Outgoing webhooks (the configuration stream) and their responses. A webhook keeps its row when
-- deleted, marked deleted, so its responses still name it. Secrets are not here: ``password``
-- and ``authorization_header`` hold what the API shows (OnCall's mask when set). Template fields
-- are the templates as saved; ``integration_filter`` is the JSON list of the integrations' UUIDs.
-- ``position`` is the event that created the webhook (the list's order).
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    team_id TEXT,
    is_webhook_enabled INTEGER NOT NULL,
    trigger_type TEXT NOT NULL,
    http_method TEXT NOT NULL,
    url TEXT NOT NULL,
    headers TEXT,
    data TEXT,
    trigger_template TEXT,
    username TEXT,
    password TEXT,
    authorization_header TEXT,
    forward_all INTEGER NOT NULL,
    integration_filter TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    position BIGINT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS webhooks_name ON webhooks (name);

-- The last responses of each webhook (the newest KEPT_RESPONSES by recording), as
-- /api/v1/webhooks/{id}/responses lists them; ``position`` is the event that recorded one.
CREATE TABLE IF NOT EXISTS webhook_responses (
    uuid TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    alert_group_id TEXT,
    trigger_type TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    url TEXT,
    request_trigger TEXT,
    request_headers TEXT,
    request_data TEXT,
    status_code INTEGER,
    content TEXT,
    event_data TEXT,
    position BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_responses_webhook ON webhook_responses (webhook_id, position);

-- Each webhook's latest response for each alert group: what other webhooks' templates see as
-- ``responses``. Kept when older responses leave webhook_responses.
CREATE TABLE IF NOT EXISTS webhook_last_responses (
    alert_group_id TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    status_code INTEGER,
    content TEXT,
    position BIGINT NOT NULL,
    PRIMARY KEY (alert_group_id, webhook_id)
);
