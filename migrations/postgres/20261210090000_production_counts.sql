-- Production counts: good and rejected units an asset made in a period (from the line's
-- counters, an MES or a shift lead), OEE's quality term. An asset's periods never overlap
-- (the store refuses one that would); a count sent again for the same start replaces it.

CREATE TABLE production_counts (
    asset_id    uuid        NOT NULL REFERENCES assets (id),
    tenant_id   uuid        NOT NULL REFERENCES tenants (id),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    good        bigint      NOT NULL CHECK (good >= 0),
    rejected    bigint      NOT NULL CHECK (rejected >= 0),
    recorded_by text        NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (asset_id, starts_at),
    -- At most 31 days: a count is reported per hour, shift, day or order, and a longer one
    -- would be spread thin over shifts it says nothing about.
    CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '31 days')
);

-- The KPIs read a tenant's counts over a period, from this index alone (after a VACUUM: an
-- index-only scan) whether they lie within a shift or cross its end.
CREATE INDEX production_counts_tenant_idx
    ON production_counts (tenant_id, starts_at, ends_at, asset_id, good, rejected);
