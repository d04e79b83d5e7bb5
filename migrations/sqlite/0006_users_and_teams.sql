-- Users and teams (the configuration stream); unique names are also kept case-folded
-- (``*_key``), as uniqueness and the users filters compare them. Deleted users and teams keep
-- their rows, marked deleted.
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL,
    email TEXT,
    email_key TEXT,
    role TEXT NOT NULL,
    timezone TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS users_username_key ON users (username_key);
CREATE INDEX IF NOT EXISTS users_email_key ON users (email_key);

CREATE TABLE IF NOT EXISTS teams (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    email TEXT,
    avatar_url TEXT,
    created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);

-- A user's teams, in the order they were given.
CREATE TABLE IF NOT EXISTS team_members (
    user_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, team_id)
);
CREATE INDEX IF NOT EXISTS teams_name_key ON teams (name_key);
CREATE INDEX IF NOT EXISTS team_members_team ON team_members (team_id);

-- The user a token belongs to (tokens created before users belong to no one).
ALTER TABLE api_tokens ADD COLUMN user_uuid TEXT;
