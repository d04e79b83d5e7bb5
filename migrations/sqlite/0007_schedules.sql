-- On-call schedules and shifts (the configuration stream). ``settings`` and ``spec`` are the
-- JSON the API gave; an ical schedule's last good calendars and its last fetch error are kept
-- beside them. Deleted rows stay, marked deleted.
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    name TEXT NOT NULL,
    team_id TEXT,
    settings TEXT NOT NULL,
    export_token_hash TEXT NOT NULL,
    ical_primary TEXT,
    ical_primary_fetched_at TEXT,
    ical_overrides TEXT,
    ical_overrides_fetched_at TEXT,
    ical_error TEXT,
    ical_error_at TEXT,
    created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS schedules_name ON schedules (name);

CREATE TABLE IF NOT EXISTS on_call_shifts (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    team_id TEXT,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS on_call_shifts_name ON on_call_shifts (name);
