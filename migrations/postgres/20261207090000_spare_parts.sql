-- The plant's stores: spare parts with their count on the shelf, and every movement of that
-- count (received, counted, taken by a completed work order). What active work orders reserve
-- is read from their parts lists (work_orders.parts), so it cannot drift from them.

CREATE TABLE spare_parts (
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    -- As work orders list it (work_orders.parts[].partNumber).
    part_number   text        COLLATE "C" NOT NULL,
    description   text        NOT NULL DEFAULT '',
    location      text        NOT NULL DEFAULT '',
    on_hand       bigint      NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reorder_point bigint      NOT NULL DEFAULT 0 CHECK (reorder_point >= 0),
    on_order      bigint      NOT NULL DEFAULT 0 CHECK (on_order >= 0),
    expected_at   timestamptz,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, part_number)
);

CREATE TABLE stock_movements (
    -- The order they were recorded in.
    seq           bigserial   PRIMARY KEY,
    id            uuid        NOT NULL UNIQUE,
    tenant_id     uuid        NOT NULL REFERENCES tenants (id),
    part_number   text        COLLATE "C" NOT NULL,
    -- RECEIVED | COUNTED | CONSUMED
    kind          text        NOT NULL,
    delta         bigint      NOT NULL,
    on_hand       bigint      NOT NULL CHECK (on_hand >= 0),
    at            timestamptz NOT NULL,
    work_order_id uuid,
    by_user       text        NOT NULL,
    note          text        NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, part_number) REFERENCES spare_parts (tenant_id, part_number)
        ON DELETE CASCADE
);

CREATE INDEX stock_movements_part_idx ON stock_movements (tenant_id, part_number, seq);
