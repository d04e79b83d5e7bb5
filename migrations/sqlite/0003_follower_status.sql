-- What each follower (ingest, the projection runners, the ticker) last reported about itself.
-- Followers run in their own processes; /health and /metrics read this table in the web.
-- Not a read model: a replay leaves it alone.
CREATE TABLE IF NOT EXISTS follower_status (
    follower TEXT PRIMARY KEY,
    error_count BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    last_error_at TEXT,
    failing_since TEXT,
    last_success_at TEXT
);
