-- Heartbeats are now followed from the alerting stream (armed, timeout, expiry), not the inbox.
DROP TABLE IF EXISTS heartbeats;
CREATE TABLE heartbeats (
    uuid TEXT PRIMARY KEY,
    integration_uuid TEXT NOT NULL UNIQUE,
    timeout_seconds INTEGER NOT NULL,
    last_heartbeat_at TEXT,
    status TEXT NOT NULL
);
DELETE FROM projection_tracking WHERE projection = 'heartbeats';
