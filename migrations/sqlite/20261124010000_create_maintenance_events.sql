-- Maintenance events (SQLite flavour of migrations/postgres).

CREATE TABLE maintenance_events (
    id            TEXT    PRIMARY KEY NOT NULL,
    tenant_id     TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id      TEXT    NOT NULL,
    kind          TEXT    NOT NULL
                  CHECK (kind IN ('FAILURE', 'REPLACEMENT', 'REPAIR', 'INSPECTION')),
    occurred_at   INTEGER NOT NULL,
    work_order_id TEXT,
    note          TEXT    NOT NULL DEFAULT '',
    recorded_at   INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
) STRICT;

CREATE INDEX maintenance_events_asset_occurred_idx ON maintenance_events (asset_id, occurred_at DESC);
