-- Anomalies, work orders and alerts (SQLite flavour of migrations/postgres).

CREATE TABLE anomalies (
    id               TEXT    PRIMARY KEY NOT NULL,
    tenant_id        TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id         TEXT    NOT NULL,
    sensor_id        TEXT    NOT NULL,
    window_start     INTEGER NOT NULL,
    detected_at      INTEGER NOT NULL,
    severity         TEXT    NOT NULL,
    anomaly_score    REAL    NOT NULL,
    threshold        REAL    NOT NULL,
    criticality      TEXT    NOT NULL,
    detection_method TEXT    NOT NULL,
    -- {"contributions": [{"feature", "sensorId", "value", "zScore"}, ...]}
    metadata         TEXT    NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX anomalies_detected_idx ON anomalies (detected_at DESC);
CREATE INDEX anomalies_asset_detected_idx ON anomalies (asset_id, detected_at DESC);

CREATE TABLE work_orders (
    id            TEXT    PRIMARY KEY NOT NULL,
    tenant_id     TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    code          TEXT    NOT NULL,
    asset_id      TEXT    NOT NULL,
    cause         TEXT    NOT NULL,
    priority      TEXT    NOT NULL,
    status        TEXT    NOT NULL
                  CHECK (status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED')),
    created_at    INTEGER NOT NULL,
    due_by        INTEGER NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    rule          TEXT    NOT NULL DEFAULT '',
    trigger_event TEXT    NOT NULL DEFAULT '',
    updated_at    INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    CONSTRAINT work_orders_code_unique UNIQUE (code)
) STRICT;

-- At most one active work order per asset and cause. Store::open_work_order relies on this index
-- (INSERT ... ON CONFLICT DO NOTHING) to stay race-free.
CREATE UNIQUE INDEX work_orders_one_active_per_asset_cause
    ON work_orders (asset_id, cause)
    WHERE status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS');

CREATE INDEX work_orders_created_idx ON work_orders (created_at DESC);
CREATE INDEX work_orders_asset_created_idx ON work_orders (asset_id, created_at DESC);

CREATE TABLE alerts (
    id             TEXT    PRIMARY KEY NOT NULL,
    tenant_id      TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id       TEXT    NOT NULL,
    severity       TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    message        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    work_order_id  TEXT,
    trigger_event  TEXT    NOT NULL,
    notify_on_call INTEGER NOT NULL DEFAULT 0 CHECK (notify_on_call IN (0, 1))
) STRICT;

CREATE INDEX alerts_created_idx ON alerts (created_at DESC);
CREATE INDEX alerts_asset_created_idx ON alerts (asset_id, created_at DESC);
