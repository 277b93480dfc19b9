// The shapes of events-api's JSON (apps/events_api/schemas.py), kept in step by the browser tests.

export const TASK_STATUSES = ["todo", "in_progress", "done", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TASK_PRIORITIES = ["low", "medium", "high", "urgent"] as const;
export type TaskPriority = (typeof TASK_PRIORITIES)[number];

/** A series: an RFC 5545 RRULE in an IANA time zone, started at the task's due date. */
export interface Recurrence {
  rrule: string;
  timezone: string;
}

/** What POST /api/v1/tasks takes and PUT replaces (every field: PUT is a full replace). */
export interface TaskIn {
  title: string;
  description: string | null;
  status: TaskStatus;
  priority: TaskPriority;
  due_at: string | null;
  tags: string[];
  reminders: string[];
  recurrence: Recurrence | null;
}

/** A stored task: what it was given, and what the API keeps about it. */
export interface Task extends TaskIn {
  id: string;
  series_id: string | null;
  occurrence_at: string | null;
  version: number;
  created_at: string;
  updated_at: string;
}

/** One page of a cursor-paged list (GET /api/v1/tasks, GET /api/v1/audit). */
export interface Page<T> {
  items: T[];
  limit: number;
  next_cursor: string | null;
}

export type TaskPage = Page<Task>;

/** One entry of GET /api/v1/audit (the audit trail of the key's tenant). */
export interface AuditEntry {
  event_id: string;
  type: string;
  subject: string;
  source: string;
  occurred_at: string;
  recorded_at: string;
  data: Record<string, unknown>;
}

export type AuditPage = Page<AuditEntry>;

export interface EventIn {
  category: string;
  message: string;
  description: string | null;
  fields: Record<string, string>;
}

export interface EventAccepted {
  id: string;
  status: "accepted";
  correlation_id: string;
}

export interface Delivery {
  channel: string;
  status: "sending" | "sent" | "dead";
  attempts: number;
}

/** An item's progress: null where this database has no such app table. */
export interface FlowStatus {
  audited: boolean | null;
  deliveries: Delivery[] | null;
}

/** Every activity type the stream sends, and what the console calls it in the live feed and
 * in a task's history (the audit trail of the same events). */
export const ACTIVITY_LABEL = {
  "event.received": { feed: "Event", history: "Event received" },
  "task.created": { feed: "Task created", history: "Created" },
  "task.updated": { feed: "Task updated", history: "Changed" },
  "task.deleted": { feed: "Task deleted", history: "Deleted" },
  "task.reminder.due": { feed: "Reminder due", history: "Reminder sent" },
} as const;
export type ActivityType = keyof typeof ACTIVITY_LABEL;

/** One `activity` message of GET /api/v1/stream (an outbox row of the caller's key). */
export interface Activity {
  cursor: string;
  id: string;
  type: ActivityType;
  subject: string;
  occurred_at: string;
  correlation_id: string;
  data: Record<string, unknown>;
  status: FlowStatus;
}

export const PRIORITY_LABEL: Record<TaskPriority, string> = {
  low: "Low",
  medium: "Medium",
  high: "High",
  urgent: "Urgent",
};

export const STATUS_LABEL: Record<TaskStatus, string> = {
  todo: "To do",
  in_progress: "In progress",
  done: "Done",
  cancelled: "Cancelled",
};

/** One option of a select: the value sent, the text shown. */
export interface Choice<T extends string> {
  value: T;
  label: string;
}

export const PRIORITY_CHOICES: readonly Choice<TaskPriority>[] = TASK_PRIORITIES.map((value) => ({
  value,
  label: PRIORITY_LABEL[value],
}));

export const STATUS_CHOICES: readonly Choice<TaskStatus>[] = TASK_STATUSES.map((value) => ({
  value,
  label: STATUS_LABEL[value],
}));
