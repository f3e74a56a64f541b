-- The maintenance crew and planned work-order slots (SQLite flavour of migrations/postgres).

CREATE TABLE technicians (
    tenant_id          TEXT    NOT NULL REFERENCES tenants (id),
    name               TEXT    NOT NULL,
    skills             TEXT    NOT NULL DEFAULT '[]',
    shifts             TEXT    NOT NULL DEFAULT '[]',
    utc_offset_minutes INTEGER NOT NULL DEFAULT 0
                       CHECK (utc_offset_minutes BETWEEN -840 AND 840),
    time_zone          TEXT,
    active             INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) STRICT;

ALTER TABLE work_orders ADD COLUMN planned_start INTEGER;
ALTER TABLE work_orders ADD COLUMN planned_end INTEGER;
ALTER TABLE work_orders ADD COLUMN technician_by_planner INTEGER NOT NULL DEFAULT 0
    CHECK (technician_by_planner IN (0, 1));
ALTER TABLE work_orders ADD COLUMN planned_by_planner INTEGER NOT NULL DEFAULT 0
    CHECK (planned_by_planner IN (0, 1));
