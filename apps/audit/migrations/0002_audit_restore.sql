-- `audit restore` bookkeeping: one run per rebuild of audit_log from the S3 archive, and the
-- archive objects each run has restored. An object is recorded in the same transaction as its
-- rows, so a run killed mid-way resumes after the last object it finished, and never counts an
-- object whose rows did not commit.
CREATE TABLE IF NOT EXISTS audit_restore_runs (
    run_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket      text        NOT NULL,
    prefix      text        NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- At most one unfinished run per archive location: that is the run a rerun resumes.
CREATE UNIQUE INDEX IF NOT EXISTS audit_restore_runs_open_idx
    ON audit_restore_runs (bucket, prefix) WHERE finished_at IS NULL;

CREATE TABLE IF NOT EXISTS audit_restore_objects (
    run_id        bigint      NOT NULL REFERENCES audit_restore_runs (run_id),
    object_key    text        NOT NULL,
    window_start  timestamptz NOT NULL,
    row_count     integer     NOT NULL,
    rows_inserted integer     NOT NULL,
    sha256        text        NOT NULL,
    restored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, object_key)
);
