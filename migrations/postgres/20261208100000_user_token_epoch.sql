-- Each time an account is disabled its token epoch goes up: a token carries the epoch it was
-- issued in (with the password's fingerprint), so enabling the account again does not bring
-- back the tokens it had before.
ALTER TABLE users ADD COLUMN token_epoch bigint NOT NULL DEFAULT 0 CHECK (token_epoch >= 0);
