-- Tenants, assets and sensors: the metadata every other table refers to.
-- SQLite flavour of migrations/postgres: ids are TEXT (hyphenated UUIDs), timestamps are
-- INTEGER milliseconds since the Unix epoch (exact, and ordered like the instants they denote),
-- JSON is TEXT. Tables are STRICT so that a value of the wrong type is refused, not coerced.
-- Every tenant-owned row carries tenant_id; the default tenant (mantis_domain::TenantId::DEFAULT)
-- is seeded here.

CREATE TABLE tenants (
    id         TEXT    PRIMARY KEY NOT NULL,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))
) STRICT;

INSERT INTO tenants (id, name) VALUES ('6d616e74-6973-4000-8000-000000000001', 'default');

CREATE TABLE assets (
    id          TEXT    PRIMARY KEY NOT NULL,
    tenant_id   TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001'
                        REFERENCES tenants (id),
    code        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    asset_type  TEXT    NOT NULL,
    location    TEXT    NOT NULL DEFAULT '',
    criticality TEXT    NOT NULL,
    created_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    updated_at  INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    CONSTRAINT assets_code_unique UNIQUE (tenant_id, code)
) STRICT;

CREATE TABLE sensors (
    id               TEXT    PRIMARY KEY NOT NULL,
    tenant_id        TEXT    NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id         TEXT    NOT NULL REFERENCES assets (id),
    code             TEXT    NOT NULL,
    sensor_type      TEXT    NOT NULL,
    unit             TEXT    NOT NULL,
    min_value        REAL    NOT NULL,
    max_value        REAL    NOT NULL,
    sampling_rate_hz REAL    NOT NULL,
    created_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    updated_at       INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),
    CONSTRAINT sensors_code_unique UNIQUE (tenant_id, code)
) STRICT;

CREATE INDEX sensors_asset_id_idx ON sensors (asset_id);
