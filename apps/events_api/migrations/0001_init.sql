-- events-api schema: API keys, usage counters, accepted events, tasks and the transactional outbox.

CREATE TABLE api_keys (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL UNIQUE,
    key_hash        text        NOT NULL UNIQUE,  -- sha256 hex of the presented key
    monthly_quota   integer     NOT NULL CHECK (monthly_quota >= 0),
    rate_per_minute integer     NOT NULL CHECK (rate_per_minute >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- One row per key: the current one-minute window and how many requests it has admitted.
CREATE TABLE api_key_rate (
    api_key_id   uuid        PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    window_start timestamptz NOT NULL,
    admitted     integer     NOT NULL
);

-- One row per key and calendar month (UTC): accepted events, kept for usage reports.
CREATE TABLE api_key_monthly_usage (
    api_key_id uuid    NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    month      date    NOT NULL,
    accepted   integer NOT NULL,
    PRIMARY KEY (api_key_id, month)
);

CREATE TABLE events (
    id             uuid        PRIMARY KEY,
    api_key_id     uuid        NOT NULL REFERENCES api_keys (id),
    category       text        NOT NULL,
    message        text        NOT NULL,
    description    text,
    fields         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    correlation_id text        NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id          uuid        PRIMARY KEY,
    api_key_id  uuid        NOT NULL REFERENCES api_keys (id),
    title       text        NOT NULL,
    description text,
    status      text        NOT NULL,
    priority    text        NOT NULL,
    due_at      timestamptz,
    tags        text[]      NOT NULL DEFAULT '{}',
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_by_owner ON tasks (api_key_id, created_at, id);

-- The transactional outbox: written in the same transaction as the domain row, published by
-- the relay in id order, marked sent only after the broker acknowledged the record.
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    topic       text        NOT NULL,
    subject     text        NOT NULL,
    payload     bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_pending_subject ON outbox (subject, id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
