-- When an alert was last changed by someone (acknowledged or assigned), for the live feed of
-- every gateway replica (SQLite flavour of migrations/postgres).

ALTER TABLE alerts ADD COLUMN changed_at INTEGER;
UPDATE alerts SET changed_at = acknowledged_at WHERE acknowledged_at IS NOT NULL;
DROP INDEX alerts_acknowledged_idx;
CREATE INDEX alerts_changed_idx ON alerts (changed_at, id) WHERE changed_at IS NOT NULL;
