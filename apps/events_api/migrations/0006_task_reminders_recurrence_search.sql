-- Tasks: reminder offsets, recurrence (RFC 5545 RRULE + IANA zone), full-text search and the
-- indexes behind GET /api/v1/tasks's filters, sorts and keyset (cursor) pagination.

-- Seconds before `due_at` at which a reminder fires (the reminders app schedules them).
ALTER TABLE tasks ADD COLUMN reminder_offsets integer[] NOT NULL DEFAULT '{}';

-- A series: every instance carries its rule and zone (the open instance is where a series is
-- edited or stopped), the series id, the series' local start (the rule's DTSTART, wall-clock
-- time in `timezone`) and the occurrence this instance stands for. One instance per occurrence:
-- the unique index is what makes "create the next instance" exactly once across replicas.
ALTER TABLE tasks ADD COLUMN rrule text;
ALTER TABLE tasks ADD COLUMN timezone text;
ALTER TABLE tasks ADD COLUMN series_id uuid;
ALTER TABLE tasks ADD COLUMN series_start timestamp;
ALTER TABLE tasks ADD COLUMN occurrence_at timestamptz;
ALTER TABLE tasks ADD CONSTRAINT tasks_recurrence_complete CHECK (
    (rrule IS NULL OR (timezone IS NOT NULL AND series_id IS NOT NULL
                       AND series_start IS NOT NULL AND occurrence_at IS NOT NULL))
);
CREATE UNIQUE INDEX tasks_one_per_occurrence ON tasks (series_id, occurrence_at)
    WHERE series_id IS NOT NULL;

-- Sorting by priority means by rank, not alphabetically.
ALTER TABLE tasks ADD COLUMN priority_rank smallint GENERATED ALWAYS AS (
    CASE priority WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 ELSE 3 END
) STORED;

-- Full-text search over title (weight A) and description (B). 'english': stemmed, so "writing"
-- finds "write"; the generated column keeps the document in step with the row.
ALTER TABLE tasks ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', title), 'A')
    || setweight(to_tsvector('english', coalesce(description, '')), 'B')
) STORED;
CREATE INDEX tasks_search ON tasks USING gin (search);
CREATE INDEX tasks_tags ON tasks USING gin (tags);

-- One index per sort, each ending in id (the keyset's tie-breaker). Tasks without a due date
-- sort last in both directions, hence two due-date expressions.
CREATE INDEX tasks_by_owner_updated ON tasks (api_key_id, updated_at, id);
CREATE INDEX tasks_by_owner_due ON tasks (api_key_id, (coalesce(due_at, 'infinity')), id);
CREATE INDEX tasks_by_owner_due_desc
    ON tasks (api_key_id, (coalesce(due_at, '-infinity')) DESC, id DESC);
CREATE INDEX tasks_by_owner_priority ON tasks (api_key_id, priority_rank, id);
CREATE INDEX tasks_by_owner_title ON tasks (api_key_id, lower(title), id);
CREATE INDEX tasks_by_series ON tasks (series_id, occurrence_at) WHERE series_id IS NOT NULL;
