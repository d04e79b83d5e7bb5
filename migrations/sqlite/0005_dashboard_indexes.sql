-- For the alert-group metrics: counting groups by integration and state reads this index alone,
-- and the first-response histogram reads only the timeline entries after the last it saw.
CREATE INDEX IF NOT EXISTS alert_groups_integration_state ON alert_groups (integration_id, state);
CREATE INDEX IF NOT EXISTS timeline_position ON timeline (position);
