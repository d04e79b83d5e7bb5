-- Routes (with their integration in the configuration stream), escalation chains and their
-- policies. A route's ``position`` is its place among its integration's routes (the default
-- route is last); an integration's routes leave with it. Deleted chains stay, marked deleted;
-- their policies leave with them. A policy's ``fields`` is the JSON of its step's parameters as
-- the API shows them.
CREATE TABLE IF NOT EXISTS routes (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    integration_id TEXT NOT NULL,
    integration_created_at TEXT NOT NULL,
    escalation_chain_id TEXT,
    routing_type TEXT,
    routing_regex TEXT,
    position INTEGER NOT NULL,
    is_default INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS routes_integration ON routes (integration_id, is_default, position);
CREATE INDEX IF NOT EXISTS routes_escalation_chain ON routes (escalation_chain_id);

CREATE TABLE IF NOT EXISTS escalation_chains (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    team_id TEXT,
    created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS escalation_chains_name ON escalation_chains (name);

CREATE TABLE IF NOT EXISTS escalation_policies (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    escalation_chain_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS escalation_policies_chain ON escalation_policies (escalation_chain_id, position);
