-- Every envelope the platform carried, once: `event_id` is the primary key, so a redelivered
-- message is a no-op (INSERT ... ON CONFLICT DO NOTHING).
CREATE TABLE IF NOT EXISTS audit_log (
    event_id        uuid        PRIMARY KEY,
    event_type      text        NOT NULL,
    version         integer     NOT NULL,
    source          text        NOT NULL,
    subject         text        NOT NULL,
    correlation_id  text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    -- When audit wrote the row (the database clock). Archive windows are cut on this column,
    -- not on occurred_at: a late or replayed event can carry an old occurred_at, but it cannot
    -- be recorded in a window that has already closed.
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    kafka_topic     text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    envelope        jsonb       NOT NULL
);

-- The query command filters by entity and/or type within a time range.
CREATE INDEX IF NOT EXISTS audit_log_subject_time_idx ON audit_log (subject, occurred_at);
CREATE INDEX IF NOT EXISTS audit_log_type_time_idx ON audit_log (event_type, occurred_at);
CREATE INDEX IF NOT EXISTS audit_log_time_idx ON audit_log (occurred_at);
CREATE INDEX IF NOT EXISTS audit_log_recorded_idx ON audit_log (recorded_at);

-- Archive windows already exported to S3 (one row per window; the object key is deterministic).
CREATE TABLE IF NOT EXISTS audit_archive (
    window_start timestamptz PRIMARY KEY,
    window_end   timestamptz NOT NULL,
    object_key   text        NOT NULL,
    row_count    integer     NOT NULL,
    sha256       text        NOT NULL,
    archived_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (window_end > window_start)
);
