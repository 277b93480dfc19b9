-- Idempotency-Key (POST /api/v1/events and the task writes): the first response to a key,
-- kept 24 h, in PostgreSQL so every replica sees it. The row is written in the same transaction
-- as the write it records: it exists exactly when the write committed, and a retry of a request
-- whose response was lost finds it and gets that response back.
CREATE TABLE idempotency_keys (
    api_key_id   uuid        NOT NULL,
    key          text        NOT NULL,
    fingerprint  text        NOT NULL,  -- sha256 of method, route and the canonical body
    status_code  integer     NOT NULL,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
