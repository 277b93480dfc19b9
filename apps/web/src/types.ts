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

export interface Task {
  id: string;
  title: string;
  description: string | null;
  status: TaskStatus;
  priority: TaskPriority;
  due_at: string | null;
  tags: string[];
  reminders: string[]; // ISO 8601 durations before due_at, e.g. "PT10M"
  recurrence: Recurrence | null;
  series_id: string | null;
  occurrence_at: string | null;
  version: number;
  created_at: string;
  updated_at: string;
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

export interface TaskPage {
  items: Task[];
  limit: number;
  next_cursor: string | null;
}

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

export interface AuditPage {
  items: AuditEntry[];
  limit: number;
  next_cursor: string | null;
}

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

/** One `activity` message of GET /api/v1/stream (an outbox row of the caller's key). */
export interface Activity {
  cursor: string;
  id: string;
  type: "event.received" | "task.created" | "task.updated" | "task.deleted" | "task.reminder.due";
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
