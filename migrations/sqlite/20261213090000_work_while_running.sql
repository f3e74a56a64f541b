-- Work that can be done while its asset runs (SQLite flavour of migrations/postgres).

ALTER TABLE work_orders ADD COLUMN while_running INTEGER NOT NULL DEFAULT 0
    CHECK (while_running IN (0, 1));
