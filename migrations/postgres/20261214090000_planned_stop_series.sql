-- The repetition a planned stop was recorded with (a lunch break every working day, a
-- weekly cleaning): its stops share the first one's id, so that a manager removes the rest of
-- a series at once. NULL: a stop recorded once.

ALTER TABLE planned_stops ADD COLUMN series_id uuid;

CREATE INDEX planned_stops_series_idx ON planned_stops (tenant_id, series_id, starts_at)
    WHERE series_id IS NOT NULL;
