-- Users, API keys, alert acknowledgement and work-order details (SQLite flavour of
-- migrations/postgres).

CREATE TABLE users (
    username      TEXT    PRIMARY KEY NOT NULL,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    display_name  TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL
                  CHECK (role IN ('operator', 'technician', 'manager', 'admin')),
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
) STRICT;

CREATE INDEX users_tenant_idx ON users (tenant_id, username);

CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY NOT NULL,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id),
    name       TEXT    NOT NULL,
    prefix     TEXT    NOT NULL UNIQUE,
    key_hash   TEXT    NOT NULL,
    role       TEXT    NOT NULL
               CHECK (role IN ('operator', 'technician', 'manager', 'admin')),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC);

ALTER TABLE alerts ADD COLUMN acknowledged_by TEXT;
ALTER TABLE alerts ADD COLUMN acknowledged_at INTEGER;
ALTER TABLE alerts ADD COLUMN ack_note TEXT NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN assignee TEXT;

CREATE INDEX alerts_tenant_created_idx ON alerts (tenant_id, created_at DESC);

ALTER TABLE work_orders ADD COLUMN technician TEXT;
ALTER TABLE work_orders ADD COLUMN parts TEXT NOT NULL DEFAULT '[]';
