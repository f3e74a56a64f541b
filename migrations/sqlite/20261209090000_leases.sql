-- Leases (SQLite flavour of migrations/postgres).

CREATE TABLE leases (
    name        TEXT    PRIMARY KEY,
    holder      TEXT    NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    CHECK (expires_at >= acquired_at)
) STRICT;
