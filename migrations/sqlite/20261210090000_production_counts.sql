-- Production counts (SQLite flavour of migrations/postgres).

CREATE TABLE production_counts (
    asset_id    TEXT    NOT NULL REFERENCES assets (id),
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id),
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    good        INTEGER NOT NULL CHECK (good >= 0),
    rejected    INTEGER NOT NULL CHECK (rejected >= 0),
    recorded_by TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (asset_id, starts_at),
    -- At most 31 days (2 678 400 000 ms): see migrations/postgres.
    CHECK (ends_at > starts_at AND ends_at - starts_at <= 2678400000)
) STRICT, WITHOUT ROWID;

-- Covering: see migrations/postgres (SQLite reads such an index without the table).
CREATE INDEX production_counts_tenant_idx
    ON production_counts (tenant_id, starts_at, ends_at, asset_id, good, rejected);
