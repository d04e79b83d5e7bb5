-- Personal notification rules (the configuration stream): each user's default and important
-- lists, ``position`` being a rule's place in its list; ``duration`` (seconds) only for waits.
-- Rules leave with their user. ``personal_notification_rule_owners`` says whose rules each
-- rules aggregate holds (its events name the aggregate, not the user).
CREATE TABLE IF NOT EXISTS personal_notification_rule_owners (
    uuid TEXT PRIMARY KEY,
    user_id TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS personal_notification_rules (
    id TEXT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    important INTEGER NOT NULL,
    position INTEGER NOT NULL,
    type TEXT NOT NULL,
    duration INTEGER
);
CREATE INDEX IF NOT EXISTS personal_notification_rules_user ON personal_notification_rules (user_id, important, position);

-- A user's channel addresses as the owner and admins see them (masked): JSON, slot to address.
ALTER TABLE users ADD COLUMN notification_channels TEXT NOT NULL DEFAULT '{}';
