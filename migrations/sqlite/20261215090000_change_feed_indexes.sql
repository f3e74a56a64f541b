-- What changed since a time, for the live feed (SQLite flavour of migrations/postgres).

CREATE INDEX work_orders_updated_idx ON work_orders (updated_at, id);
CREATE INDEX alerts_acknowledged_idx ON alerts (acknowledged_at, id) WHERE acknowledged_at IS NOT NULL;
