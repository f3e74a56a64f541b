-- Planned stops (SQLite flavour of migrations/postgres).

CREATE TABLE planned_stops (
    id         TEXT    PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    asset_id   TEXT    REFERENCES assets (id),
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    reason     TEXT    NOT NULL DEFAULT '',
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    -- At most 366 days (31 622 400 000 ms): see migrations/postgres.
    CHECK (ends_at > starts_at AND ends_at - starts_at <= 31622400000)
) STRICT;

CREATE INDEX planned_stops_tenant_idx ON planned_stops (tenant_id, ends_at, starts_at);
