import { useId, useState } from "react";

import { errorFor, SelectField, TextField } from "./Field";
import { FormCard, useSubmission } from "./Form";
import { durationMinutes } from "./taskQuery";
import { PRIORITY_CHOICES, STATUS_CHOICES, type Task, type TaskIn, type TaskPriority, type TaskStatus } from "./types";

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

  const submission = useSubmission(async () => {
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
  });
  const { fields } = submission;

  const id = (name: string) => `${uid}-${name}`;
  const heading = task === null ? "New task" : `Edit “${task.title}”`;
  return (
    <FormCard
      className="task-form"
      aria-label={heading}
      submission={submission}
      submitLabel={task === null ? "Create task" : "Save changes"}
      extraActions={
        onCancel ? (
          <button type="button" onClick={onCancel} disabled={submission.busy}>
            Cancel
          </button>
        ) : null
      }
    >
      <h3>{heading}</h3>
      <div className="form-grid">
        <TextField id={id("title")} label="Title" error={errorFor(fields, "title")} value={title} onChange={setTitle} />
        <SelectField
          id={id("priority")}
          label="Priority"
          error={errorFor(fields, "priority")}
          choices={PRIORITY_CHOICES}
          value={priority}
          onChange={setPriority}
        />
        <SelectField
          id={id("status")}
          label="Status"
          error={errorFor(fields, "status")}
          choices={STATUS_CHOICES}
          value={status}
          onChange={setStatus}
        />
        <TextField
          id={id("due")}
          label="Due"
          error={errorFor(fields, "due_at")}
          type="datetime-local"
          value={due}
          onChange={setDue}
        />
        <TextField
          id={id("tags")}
          label="Tags"
          hint="Comma-separated"
          error={errorFor(fields, "tags")}
          value={tags}
          onChange={setTags}
        />
        <TextField
          id={id("reminders")}
          label="Reminders"
          hint="Minutes before due, comma-separated (0: at due time)"
          error={errorFor(fields, "reminders")}
          inputMode="numeric"
          value={reminders}
          onChange={setReminders}
        />
        <TextField
          id={id("rrule")}
          label="Repeats"
          hint="An RRULE, e.g. FREQ=WEEKLY;BYDAY=MO (empty: does not repeat)"
          error={errorFor(fields, "recurrence.rrule") ?? fields.recurrence}
          placeholder="FREQ=WEEKLY;BYDAY=MO"
          value={rrule}
          onChange={setRrule}
        />
        <TextField
          id={id("zone")}
          label="Time zone"
          hint="IANA name the rule's times are in"
          error={errorFor(fields, "recurrence.timezone")}
          value={zone}
          onChange={setZone}
        />
        <TextField
          id={id("description")}
          label="Description"
          error={errorFor(fields, "description")}
          rows={2}
          value={description}
          onChange={setDescription}
        />
      </div>
    </FormCard>
  );
}
