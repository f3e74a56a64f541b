-- Planned stops: the production calendar. Stretches in which an asset (or, with no asset, the
-- whole plant) is not planned to produce: breaks, planned changeovers, weekends without
-- shifts, holidays, shutdowns. The KPIs take them out of OEE's planned production time.

CREATE TABLE planned_stops (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    -- NULL: the whole plant.
    asset_id   uuid        REFERENCES assets (id),
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL,
    -- At most 366 days (a mothballed line).
    CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '366 days')
);

-- The KPIs and the list read a tenant's stops overlapping a period: those ending after its
-- start, of which the index keeps the start to stop at the period's end without the table.
CREATE INDEX planned_stops_tenant_idx ON planned_stops (tenant_id, ends_at, starts_at);
