import { errorFor, SelectField, TextField } from "./Field";
import { FormCard, useForm } from "./Form";
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

/** The form's values, as typed (parsed into a TaskIn when sent). */
interface Draft {
  title: string;
  description: string;
  status: TaskStatus;
  priority: TaskPriority;
  due: string; // datetime-local, the browser's time
  tags: string;
  reminders: string;
  rrule: string;
  zone: string;
}

function draftOf(task: Task | null): Draft {
  return {
    title: task?.title ?? "",
    description: task?.description ?? "",
    status: task?.status ?? "todo",
    priority: task?.priority ?? "medium",
    due: toLocalInput(task?.due_at ?? null),
    tags: task?.tags.join(", ") ?? "",
    reminders: remindersText(task),
    rrule: task?.recurrence?.rrule ?? "",
    zone: task?.recurrence?.timezone ?? BROWSER_ZONE,
  };
}

function taskOf(draft: Draft): TaskIn {
  const { title, description, status, priority, due, tags, reminders, rrule, zone } = draft;
  return {
    title,
    description: description.trim() ? description : null,
    status,
    priority,
    due_at: due ? new Date(due).toISOString() : null,
    tags: parseTags(tags),
    reminders: parseReminders(reminders),
    recurrence: rrule.trim() ? { rrule: rrule.trim(), timezone: zone.trim() } : null,
  };
}

interface TaskFormProps {
  task: Task | null; // null: a new task
  onSubmit: (task: TaskIn) => Promise<void>;
  onCancel?: () => void;
}

/** Create or edit a task. Limits are the API's: its 422 field errors appear under each field. */
export function TaskForm({ task, onSubmit, onCancel }: TaskFormProps) {
  const form = useForm(
    () => draftOf(task),
    async (draft, setDraft) => {
      await onSubmit(taskOf(draft));
      // A new task's form starts over, in the time zone last used.
      if (task === null) setDraft((d) => ({ ...draftOf(null), zone: d.zone }));
    },
  );
  const { field, submission } = form;

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
        <TextField label="Title" {...field("title")} />
        <SelectField label="Priority" choices={PRIORITY_CHOICES} {...field("priority")} />
        <SelectField label="Status" choices={STATUS_CHOICES} {...field("status")} />
        <TextField label="Due" type="datetime-local" {...field("due", "due_at")} />
        <TextField label="Tags" hint="Comma-separated" {...field("tags")} />
        <TextField
          label="Reminders"
          hint="Minutes before due, comma-separated (0: at due time)"
          inputMode="numeric"
          {...field("reminders")}
        />
        <TextField
          label="Repeats"
          hint="An RRULE, e.g. FREQ=WEEKLY;BYDAY=MO (empty: does not repeat)"
          placeholder="FREQ=WEEKLY;BYDAY=MO"
          {...field("rrule")}
          // a rule the API refuses as a whole is reported at `recurrence`
          error={errorFor(submission.fields, "recurrence.rrule") ?? submission.fields.recurrence}
        />
        <TextField
          label="Time zone"
          hint="IANA name the rule's times are in"
          {...field("zone", "recurrence.timezone")}
        />
        <TextField label="Description" rows={2} {...field("description")} />
      </div>
    </FormCard>
  );
}
