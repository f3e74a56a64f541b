-- Anomalies, work orders and alerts.

CREATE TABLE anomalies (
    id               uuid             PRIMARY KEY,
    tenant_id        uuid             NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id         uuid             NOT NULL,
    sensor_id        uuid             NOT NULL,
    window_start     timestamptz      NOT NULL,
    detected_at      timestamptz      NOT NULL,
    severity         text             NOT NULL,
    anomaly_score    double precision NOT NULL,
    threshold        double precision NOT NULL,
    criticality      text             NOT NULL,
    detection_method text             NOT NULL,
    -- {"contributions": [{"feature", "sensorId", "value", "zScore"}, ...]}
    metadata         jsonb            NOT NULL DEFAULT '{}'
);

CREATE INDEX anomalies_detected_idx ON anomalies (detected_at DESC);
CREATE INDEX anomalies_asset_detected_idx ON anomalies (asset_id, detected_at DESC);

CREATE TABLE work_orders (
    id            uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    code          text        NOT NULL,
    asset_id      uuid        NOT NULL,
    cause         text        NOT NULL,
    priority      text        NOT NULL,
    status        text        NOT NULL
                  CHECK (status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED')),
    created_at    timestamptz NOT NULL,
    due_by        timestamptz NOT NULL,
    description   text        NOT NULL DEFAULT '',
    rule          text        NOT NULL DEFAULT '',
    trigger_event text        NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT work_orders_code_unique UNIQUE (code)
);

-- At most one active work order per asset and cause. Store::open_work_order relies on this index
-- (INSERT ... ON CONFLICT DO NOTHING) to stay race-free across processes.
CREATE UNIQUE INDEX work_orders_one_active_per_asset_cause
    ON work_orders (asset_id, cause)
    WHERE status IN ('OPEN', 'SCHEDULED', 'IN_PROGRESS');

CREATE INDEX work_orders_created_idx ON work_orders (created_at DESC);
CREATE INDEX work_orders_asset_created_idx ON work_orders (asset_id, created_at DESC);

CREATE TABLE alerts (
    id             uuid        PRIMARY KEY,
    tenant_id      uuid        NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id       uuid        NOT NULL,
    severity       text        NOT NULL,
    kind           text        NOT NULL,
    message        text        NOT NULL,
    created_at     timestamptz NOT NULL,
    work_order_id  uuid,
    trigger_event  text        NOT NULL,
    notify_on_call boolean     NOT NULL DEFAULT false
);

CREATE INDEX alerts_created_idx ON alerts (created_at DESC);
CREATE INDEX alerts_asset_created_idx ON alerts (asset_id, created_at DESC);
