-- Per-service state documents (e.g. an anomaly detector's baselines), last write wins.
-- Owned by a service, not by a tenant: no tenant_id.

CREATE TABLE service_state (
    key        text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
