-- When an alert was last changed by someone (acknowledged or assigned), for the live feed of
-- every gateway replica: an assignment made through another replica reaches its WebSocket
-- clients too (the feed read acknowledgements only).

ALTER TABLE alerts ADD COLUMN changed_at timestamptz;
UPDATE alerts SET changed_at = acknowledged_at WHERE acknowledged_at IS NOT NULL;
DROP INDEX alerts_acknowledged_idx;
CREATE INDEX alerts_changed_idx ON alerts (changed_at, id) WHERE changed_at IS NOT NULL;
