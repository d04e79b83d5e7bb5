-- Users' iCal export tokens (digests only): one row per user who ever had one; a revoked
-- token keeps its row with revoked_at set, and a new token replaces the digest.
CREATE TABLE IF NOT EXISTS user_schedule_export_tokens (
    user_id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
