-- Leases: which instance of a replicated service runs a singleton task (e.g. which ingestion
-- replica reads a device). An instance holds a lease until `expires_at` and renews it well
-- before; a lease past its expiry may be taken by another instance (the holder died or hangs).
-- Owned by a service, not by a tenant: no tenant_id.

CREATE TABLE leases (
    name        text        COLLATE "C" PRIMARY KEY,
    holder      text        NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    CHECK (expires_at >= acquired_at)
);
