-- Time off: stretches in which a technician (or, with no technician, the whole crew: a plant
-- holiday, a shutdown) takes no work. The planner takes them out of the shifts.

CREATE TABLE time_off (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    -- A crew member's name (technicians.name); NULL: the whole crew. Not a foreign key: time
    -- off stays when someone leaves the crew and applies again if they come back.
    technician text        COLLATE "C",
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL,
    reason     text        NOT NULL DEFAULT '',
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);

CREATE INDEX time_off_tenant_idx ON time_off (tenant_id, ends_at);
