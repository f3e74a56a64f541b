-- Token epoch of an account (SQLite flavour of migrations/postgres).
ALTER TABLE users ADD COLUMN token_epoch INTEGER NOT NULL DEFAULT 0 CHECK (token_epoch >= 0);
