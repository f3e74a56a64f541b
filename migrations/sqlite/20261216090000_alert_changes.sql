-- When an alert was last changed by someone (acknowledged or assigned), for the live feed of
-- every gateway replica (SQLite flavour of migrations/postgres).

ALTER TABLE alerts ADD COLUMN changed_at INTEGER;
-- Alerts acknowledged or assigned before: changed then (as far as is known), so that an older
-- state (the alert as raised, delivered again) is told apart from theirs.
UPDATE alerts SET changed_at = COALESCE(acknowledged_at, created_at)
    WHERE acknowledged_at IS NOT NULL OR assignee IS NOT NULL;
DROP INDEX alerts_acknowledged_idx;
CREATE INDEX alerts_changed_idx ON alerts (changed_at, id) WHERE changed_at IS NOT NULL;
