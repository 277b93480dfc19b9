import { useId, useState, type SyntheticEvent } from "react";

import { ApiError, messageOf, type FieldErrors } from "./api";
import { errorFor, Field } from "./Field";
import { durationMinutes } from "./taskQuery";
import {
  PRIORITY_LABEL,
  STATUS_LABEL,
  TASK_PRIORITIES,
  TASK_STATUSES,
  type Task,
  type TaskIn,
  type TaskPriority,
  type TaskStatus,
} from "./types";

function toLocalInput(iso: string | null): string {
  if (!iso) return "";
  const date = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}`
  );
}

/** "60, 10" (minutes before due) -> ["PT60M", "PT10M"]; anything else goes to the API as
 * typed, so its 422 says what is wrong with it. */
export function parseReminders(raw: string): string[] {
  return parseTags(raw).map((item) => (/^\d+$/.test(item) ? `PT${item}M` : item));
}

function remindersText(task: Task | null): string {
  return (task?.reminders ?? []).map((iso) => String(durationMinutes(iso) ?? iso)).join(", ");
}

const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

export function parseTags(raw: string): string[] {
  return raw
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

interface TaskFormProps {
  task: Task | null; // null: a new task
  onSubmit: (task: TaskIn) => Promise<void>;
  onCancel?: () => void;
}

/** Create or edit a task. Limits are the API's: its 422 field errors appear under each field. */
export function TaskForm({ task, onSubmit, onCancel }: TaskFormProps) {
  const uid = useId();
  const [title, setTitle] = useState(task?.title ?? "");
  const [description, setDescription] = useState(task?.description ?? "");
  const [status, setStatus] = useState<TaskStatus>(task?.status ?? "todo");
  const [priority, setPriority] = useState<TaskPriority>(task?.priority ?? "medium");
  const [due, setDue] = useState(toLocalInput(task?.due_at ?? null));
  const [tags, setTags] = useState(task?.tags.join(", ") ?? "");
  const [reminders, setReminders] = useState(remindersText(task));
  const [rrule, setRrule] = useState(task?.recurrence?.rrule ?? "");
  const [zone, setZone] = useState(task?.recurrence?.timezone ?? BROWSER_ZONE);
  const [fields, setFields] = useState<FieldErrors>({});
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: SyntheticEvent): Promise<void> {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setFields({});
    try {
      await onSubmit({
        title,
        description: description.trim() ? description : null,
        status,
        priority,
        due_at: due ? new Date(due).toISOString() : null,
        tags: parseTags(tags),
        reminders: parseReminders(reminders),
        recurrence: rrule.trim() ? { rrule: rrule.trim(), timezone: zone.trim() } : null,
      });
      if (task === null) {
        setTitle("");
        setDescription("");
        setStatus("todo");
        setPriority("medium");
        setDue("");
        setTags("");
        setReminders("");
        setRrule("");
      }
    } catch (caught) {
      if (caught instanceof ApiError && Object.keys(caught.fields).length > 0) {
        setFields(caught.fields);
      }
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  }

  const id = (name: string) => `${uid}-${name}`;
  const heading = task === null ? "New task" : `Edit “${task.title}”`;
  return (
    <form
      className="card task-form"
      aria-label={heading}
      onSubmit={(e) => {
        void submit(e);
      }}
      noValidate
    >
      <h3>{heading}</h3>
      <div className="form-grid">
        <Field id={id("title")} label="Title" error={errorFor(fields, "title")}>
          {(p) => (
            <input {...p} value={title} onChange={(e) => { setTitle(e.target.value); }} />
          )}
        </Field>
        <Field id={id("priority")} label="Priority" error={errorFor(fields, "priority")}>
          {(p) => (
            <select
              {...p}
              value={priority}
              onChange={(e) => { setPriority(e.target.value as TaskPriority); }}
            >
              {TASK_PRIORITIES.map((v) => (
                <option key={v} value={v}>
                  {PRIORITY_LABEL[v]}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field id={id("status")} label="Status" error={errorFor(fields, "status")}>
          {(p) => (
            <select
              {...p}
              value={status}
              onChange={(e) => { setStatus(e.target.value as TaskStatus); }}
            >
              {TASK_STATUSES.map((v) => (
                <option key={v} value={v}>
                  {STATUS_LABEL[v]}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field id={id("due")} label="Due" error={errorFor(fields, "due_at")}>
          {(p) => (
            <input
              {...p}
              type="datetime-local"
              value={due}
              onChange={(e) => { setDue(e.target.value); }}
            />
          )}
        </Field>
        <Field
          id={id("tags")}
          label="Tags"
          hint="Comma-separated"
          error={errorFor(fields, "tags")}
        >
          {(p) => <input {...p} value={tags} onChange={(e) => { setTags(e.target.value); }} />}
        </Field>
        <Field
          id={id("reminders")}
          label="Reminders"
          hint="Minutes before due, comma-separated (0: at due time)"
          error={errorFor(fields, "reminders")}
        >
          {(p) => (
            <input
              {...p}
              inputMode="numeric"
              value={reminders}
              onChange={(e) => { setReminders(e.target.value); }}
            />
          )}
        </Field>
        <Field
          id={id("rrule")}
          label="Repeats"
          hint="An RRULE, e.g. FREQ=WEEKLY;BYDAY=MO (empty: does not repeat)"
          error={errorFor(fields, "recurrence.rrule") ?? fields.recurrence}
        >
          {(p) => (
            <input
              {...p}
              placeholder="FREQ=WEEKLY;BYDAY=MO"
              value={rrule}
              onChange={(e) => { setRrule(e.target.value); }}
            />
          )}
        </Field>
        <Field
          id={id("zone")}
          label="Time zone"
          hint="IANA name the rule's times are in"
          error={errorFor(fields, "recurrence.timezone")}
        >
          {(p) => <input {...p} value={zone} onChange={(e) => { setZone(e.target.value); }} />}
        </Field>
        <Field
          id={id("description")}
          label="Description"
          error={errorFor(fields, "description")}
        >
          {(p) => (
            <textarea
              {...p}
              rows={2}
              value={description}
              onChange={(e) => { setDescription(e.target.value); }}
            />
          )}
        </Field>
      </div>
      {error ? (
        <p className="form-error" role="alert">
          {error}
        </p>
      ) : null}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {task === null ? "Create task" : "Save changes"}
        </button>
        {onCancel ? (
          <button type="button" onClick={onCancel} disabled={busy}>
            Cancel
          </button>
        ) : null}
      </div>
    </form>
  );
}
