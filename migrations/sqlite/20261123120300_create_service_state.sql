-- Per-service state documents (e.g. an anomaly detector's baselines), last write wins.
-- Owned by a service, not by a tenant: no tenant_id.

CREATE TABLE service_state (
    key        TEXT    PRIMARY KEY NOT NULL,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
) STRICT;
