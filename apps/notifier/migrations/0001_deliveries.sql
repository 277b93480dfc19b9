-- One row per (event, channel): the notifier's memory of what it has already sent.
-- `status` moves sending -> sent, or sending -> dead (dead-lettered); a row that is `sent` or
-- `dead` is never sent again, whatever Kafka redelivers.
CREATE TABLE IF NOT EXISTS notifier_deliveries (
    event_id         uuid        NOT NULL,
    channel          text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('sending', 'sent', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    event_type       text        NOT NULL,
    correlation_id   text,
    last_error       text,
    last_status_code integer,
    -- A lease stops two replicas (e.g. during a rebalance) from sending the same delivery at the
    -- same time: only the owner may send until the lease expires.
    lease_owner      text,
    lease_expires_at timestamptz,
    first_attempt_at timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz,
    PRIMARY KEY (event_id, channel)
);

CREATE INDEX IF NOT EXISTS notifier_deliveries_status_idx
    ON notifier_deliveries (status, updated_at);
