-- Maintenance events: failures, replacements, repairs and inspections recorded on assets
-- (usually when a work order is completed). Failures and replacements delimit the runs to
-- failure the in-platform RUL model trains on.

CREATE TABLE maintenance_events (
    id            uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id      uuid        NOT NULL,
    kind          text        NOT NULL
                  CHECK (kind IN ('FAILURE', 'REPLACEMENT', 'REPAIR', 'INSPECTION')),
    occurred_at   timestamptz NOT NULL,
    work_order_id uuid,
    note          text        NOT NULL DEFAULT '',
    recorded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX maintenance_events_asset_occurred_idx ON maintenance_events (asset_id, occurred_at DESC);
