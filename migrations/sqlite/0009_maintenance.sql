-- The maintenance of each integration (shown as none once its end has passed, with no event),
-- and the maintenances whose end the alerting store recorded: their deadline is not set again
-- when the configuration's events are applied after it (a replay, or a lagging view).
ALTER TABLE integrations ADD COLUMN maintenance_mode TEXT;
ALTER TABLE integrations ADD COLUMN maintenance_started_at TEXT;
ALTER TABLE integrations ADD COLUMN maintenance_end_at TEXT;

CREATE TABLE IF NOT EXISTS maintenance_ends (
    maintenance TEXT PRIMARY KEY,
    ended_at TEXT NOT NULL
);
