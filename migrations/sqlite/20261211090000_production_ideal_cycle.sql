-- Ideal cycle time of production counts (SQLite flavour of migrations/postgres).

ALTER TABLE production_counts ADD COLUMN ideal_cycle_seconds REAL
    CHECK (ideal_cycle_seconds >= 0.001 AND ideal_cycle_seconds <= 86400);

-- Covering: see migrations/postgres.
DROP INDEX production_counts_tenant_idx;
CREATE INDEX production_counts_tenant_idx
    ON production_counts (tenant_id, starts_at, ends_at, asset_id, good, rejected,
                          ideal_cycle_seconds);
