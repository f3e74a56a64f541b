-- The repetition a planned stop was recorded with (SQLite flavour of migrations/postgres).

ALTER TABLE planned_stops ADD COLUMN series_id TEXT;

CREATE INDEX planned_stops_series_idx ON planned_stops (tenant_id, series_id, starts_at)
    WHERE series_id IS NOT NULL;
