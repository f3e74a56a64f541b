-- The ideal cycle time of the units a production count reports (seconds per unit, when the
-- MES or shift lead states it): OEE's performance term, ideal cycle × units ÷ run time. Per
-- count, so that a product mix (a count per product run) stays exact. Bounds: see
-- mantis_domain::production (1 ms to a day per unit).

ALTER TABLE production_counts ADD COLUMN ideal_cycle_seconds double precision
    CHECK (ideal_cycle_seconds >= 0.001 AND ideal_cycle_seconds <= 86400);

-- The KPIs' sums read it too: the covering index takes it in.
DROP INDEX production_counts_tenant_idx;
CREATE INDEX production_counts_tenant_idx
    ON production_counts (tenant_id, starts_at, ends_at, asset_id, good, rejected,
                          ideal_cycle_seconds);
