-- The maintenance crew the planner assigns work orders to (GET /api/v1/schedule), and the
-- planned slot of a work order once a plan is applied.

CREATE TABLE technicians (
    tenant_id          uuid        NOT NULL REFERENCES tenants (id),
    -- As written on work orders (work_orders.technician).
    name               text        COLLATE "C" NOT NULL,
    -- ["electrical", "mechanical", ...], lower case.
    skills             jsonb       NOT NULL DEFAULT '[]',
    -- [{"days": ["MON", ...], "start": "06:00", "end": "14:00"}, ...]
    shifts             jsonb       NOT NULL DEFAULT '[]',
    utc_offset_minutes bigint      NOT NULL DEFAULT 0
                       CHECK (utc_offset_minutes BETWEEN -840 AND 840),
    -- IANA time zone of the shifts (daylight saving time followed); NULL: the fixed offset.
    time_zone          text,
    active             boolean     NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

ALTER TABLE work_orders ADD COLUMN planned_start timestamptz;
ALTER TABLE work_orders ADD COLUMN planned_end timestamptz;
-- Whether the technician, and the planned slot, are the planner's (it may change them when it
-- plans again), not a person's (kept).
ALTER TABLE work_orders ADD COLUMN technician_by_planner boolean NOT NULL DEFAULT false;
ALTER TABLE work_orders ADD COLUMN planned_by_planner boolean NOT NULL DEFAULT false;
