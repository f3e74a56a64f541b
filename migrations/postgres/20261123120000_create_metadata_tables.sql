-- Tenants, assets and sensors: the metadata every other table refers to.
-- Every tenant-owned row carries tenant_id; single-tenant deployments use the default tenant
-- (mantis_domain::TenantId::DEFAULT), seeded here. Codes use the "C" collation (byte order), so
-- that lists ordered by code come out in the same order as in SQLite, whatever the locale.

CREATE TABLE tenants (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tenants (id, name) VALUES ('6d616e74-6973-4000-8000-000000000001', 'default');

CREATE TABLE assets (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001'
                            REFERENCES tenants (id),
    code        text        COLLATE "C" NOT NULL,
    name        text        NOT NULL,
    asset_type  text        NOT NULL,
    location    text        NOT NULL DEFAULT '',
    criticality text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assets_code_unique UNIQUE (tenant_id, code)
);

CREATE TABLE sensors (
    id               uuid             PRIMARY KEY,
    tenant_id        uuid             NOT NULL DEFAULT '6d616e74-6973-4000-8000-000000000001',
    asset_id         uuid             NOT NULL REFERENCES assets (id),
    code             text             COLLATE "C" NOT NULL,
    sensor_type      text             NOT NULL,
    unit             text             NOT NULL,
    min_value        double precision NOT NULL,
    max_value        double precision NOT NULL,
    sampling_rate_hz double precision NOT NULL,
    created_at       timestamptz      NOT NULL DEFAULT now(),
    updated_at       timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT sensors_code_unique UNIQUE (tenant_id, code)
);

CREATE INDEX sensors_asset_id_idx ON sensors (asset_id);
