-- The gateway's people and machines (users with a role, API keys), and what people change on
-- alerts (acknowledgement, assignment) and work orders (technician, parts).

CREATE TABLE users (
    username      text        COLLATE "C" PRIMARY KEY,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    display_name  text        NOT NULL DEFAULT '',
    role          text        NOT NULL
                  CHECK (role IN ('operator', 'technician', 'manager', 'admin')),
    -- PHC string (argon2id).
    password_hash text        NOT NULL,
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX users_tenant_idx ON users (tenant_id, username);

CREATE TABLE api_keys (
    id         uuid        PRIMARY KEY,
    tenant_id  uuid        NOT NULL REFERENCES tenants (id),
    name       text        NOT NULL,
    -- The public part of the key, by which it is found.
    prefix     text        COLLATE "C" NOT NULL UNIQUE,
    -- Hex SHA-256 of the whole key.
    key_hash   text        NOT NULL,
    role       text        NOT NULL
               CHECK (role IN ('operator', 'technician', 'manager', 'admin')),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);

CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id, created_at DESC);

ALTER TABLE alerts ADD COLUMN acknowledged_by text;
ALTER TABLE alerts ADD COLUMN acknowledged_at timestamptz;
ALTER TABLE alerts ADD COLUMN ack_note text NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN assignee text;

CREATE INDEX alerts_tenant_created_idx ON alerts (tenant_id, created_at DESC);

ALTER TABLE work_orders ADD COLUMN technician text;
-- [{"partNumber": "...", "quantity": 2}, ...]
ALTER TABLE work_orders ADD COLUMN parts jsonb NOT NULL DEFAULT '[]';
