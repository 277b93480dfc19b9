-- The reminders app's durable schedule. The schedule lives here, not in process memory: a
-- replica holds at most one claimed batch, whatever the number of scheduled reminders.

-- The newest version of each task this app has applied: task events are applied only when
-- newer, so a redelivered or replayed change is a no-op.
CREATE TABLE IF NOT EXISTS reminder_tasks (
    task_id    uuid        PRIMARY KEY,
    version    integer     NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per reminder: pending -> fired (published, broker-acknowledged) or cancelled (the
-- task was completed, deleted or moved). `id` is also the event id of its `task.reminder.due`
-- envelope, so a republished reminder is recognised downstream (notifier, audit) as the same.
CREATE TABLE IF NOT EXISTS reminders (
    id             uuid        PRIMARY KEY,
    task_id        uuid        NOT NULL,
    task_version   integer     NOT NULL,
    offset_s       integer     NOT NULL CHECK (offset_s >= 0),
    due_at         timestamptz NOT NULL,
    fire_at        timestamptz NOT NULL,
    status         text        NOT NULL CHECK (status IN ('pending', 'fired', 'cancelled')),
    tenant         text,
    title          text        NOT NULL,
    correlation_id text        NOT NULL,
    attempts       integer     NOT NULL DEFAULT 0,
    last_error     text,
    fired_at       timestamptz,
    late_ms        bigint,      -- fired_at - fire_at (database clock), how late it went out
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- The scheduler's claim: due pending rows in fire_at order.
CREATE INDEX IF NOT EXISTS reminders_due ON reminders (fire_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS reminders_by_task ON reminders (task_id, status);
