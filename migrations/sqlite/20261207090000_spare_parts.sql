-- The plant's stores (SQLite flavour of migrations/postgres).

CREATE TABLE spare_parts (
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    part_number   TEXT    NOT NULL,
    description   TEXT    NOT NULL DEFAULT '',
    location      TEXT    NOT NULL DEFAULT '',
    on_hand       INTEGER NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reorder_point INTEGER NOT NULL DEFAULT 0 CHECK (reorder_point >= 0),
    on_order      INTEGER NOT NULL DEFAULT 0 CHECK (on_order >= 0),
    expected_at   INTEGER,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, part_number)
) STRICT;

CREATE TABLE stock_movements (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    tenant_id     TEXT    NOT NULL REFERENCES tenants (id),
    part_number   TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    delta         INTEGER NOT NULL,
    on_hand       INTEGER NOT NULL CHECK (on_hand >= 0),
    at            INTEGER NOT NULL,
    work_order_id TEXT,
    by_user       TEXT    NOT NULL,
    note          TEXT    NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, part_number) REFERENCES spare_parts (tenant_id, part_number)
        ON DELETE CASCADE
) STRICT;

CREATE INDEX stock_movements_part_idx ON stock_movements (tenant_id, part_number, seq);
