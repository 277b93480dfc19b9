import { useCallback, useEffect, useId, useMemo, useState } from "react";

import { messageOf, type Api } from "./api";
import { ANY, SelectField, TextField } from "./Field";
import { TaskForm } from "./TaskForm";
import { TaskHistory } from "./TaskHistory";
import {
  durationMinutes,
  EMPTY_QUERY,
  formatMinutes,
  isFiltered,
  loadTasks,
  MAX_LOADED,
  SORT_CHOICES,
  type TaskQuery,
} from "./taskQuery";
import { PRIORITY_CHOICES, PRIORITY_LABEL, STATUS_CHOICES, STATUS_LABEL, type Task, type TaskIn } from "./types";

const PAGE_SIZE = 10;
const SEARCH_DELAY_MS = 250; // typing in the search box sends one query, not one per key

type Load =
  | { state: "loading" }
  | { state: "error"; message: string }
  | { state: "ready"; tasks: Task[]; more: boolean; query: TaskQuery };

function formatDue(iso: string | null): string {
  if (!iso) return "No due date";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function overdue(task: Task): boolean {
  return (
    task.due_at !== null &&
    task.status !== "done" &&
    task.status !== "cancelled" &&
    new Date(task.due_at).getTime() < Date.now()
  );
}

function asInput(task: Task, changes: Partial<TaskIn> = {}): TaskIn {
  const { title, description, status, priority, due_at, tags, reminders, recurrence } = task;
  return { title, description, status, priority, due_at, tags, reminders, recurrence, ...changes };
}

function remindersLabel(task: Task): string {
  const minutes = task.reminders.map((iso) => durationMinutes(iso) ?? 0);
  return `Reminders: ${minutes.map((m) => (m === 0 ? "at due time" : `${formatMinutes(m)} before`)).join(", ")}`;
}

interface TasksProps {
  api: Api;
  changes: number; // bumped by the live stream when a task changed
  onNotice: (message: string) => void;
}

export function Tasks({ api, changes, onNotice }: TasksProps) {
  const uid = useId();
  const [load, setLoad] = useState<Load>({ state: "loading" });
  const [query, setQuery] = useState<TaskQuery>(EMPTY_QUERY);
  const [sent, setSent] = useState<TaskQuery>(EMPTY_QUERY); // what the API was last asked
  const [knownTags, setKnownTags] = useState<string[]>([]);
  const [history, setHistory] = useState<string | null>(null);
  const [page, setPage] = useState(0);
  const [editing, setEditing] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [rowError, setRowError] = useState<{ id: string; message: string } | null>(null);
  const [reloads, setReloads] = useState(0);
  const reload = useCallback(() => {
    setReloads((n) => n + 1);
  }, []);

  // The search box waits for a pause in typing; every other control queries at once.
  useEffect(() => {
    if (query.search === sent.search) return;
    const timer = setTimeout(() => {
      setSent(query);
    }, SEARCH_DELAY_MS);
    return () => {
      clearTimeout(timer);
    };
  }, [query, sent.search]);

  useEffect(() => {
    let current = true;
    loadTasks(api, sent).then(
      ({ tasks, more }) => {
        if (!current) return;
        setLoad({ state: "ready", tasks, more, query: sent });
        // Tags offered by the filter: every tag seen so far, so narrowing never hides one.
        setKnownTags((known) => [...new Set([...known, ...tasks.flatMap((t) => t.tags)])].sort());
      },
      (error: unknown) => {
        if (current) setLoad({ state: "error", message: messageOf(error) });
      },
    );
    return () => {
      current = false;
    };
  }, [api, changes, reloads, sent]);

  const shown = useMemo(() => (load.state === "ready" ? load.tasks : []), [load]);
  const filtered = load.state === "ready" && isFiltered(load.query);
  const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
  const current = Math.min(page, pages - 1);
  const visible = shown.slice(current * PAGE_SIZE, (current + 1) * PAGE_SIZE);

  function update<K extends keyof TaskQuery>(key: K, value: TaskQuery[K]): void {
    const next = { ...query, [key]: value };
    setQuery(next);
    setPage(0);
    if (key !== "search") setSent(next);
  }

  /** A toolbar control's props: it shows and changes `query[key]`. */
  function filter<K extends keyof TaskQuery>(key: K) {
    return {
      id: id(key),
      value: query[key],
      onChange: (value: TaskQuery[K]) => {
        update(key, value);
      },
    };
  }

  async function act(task: Task, work: () => Promise<unknown>, done: string): Promise<void> {
    setRowError(null);
    try {
      await work();
      onNotice(done);
      reload();
    } catch (error) {
      setRowError({ id: task.id, message: messageOf(error) });
    }
  }

  async function create(task: TaskIn): Promise<void> {
    const created = await api.createTask(task);
    onNotice(`Created “${created.title}”.`);
    reload();
  }

  async function save(task: Task, input: TaskIn): Promise<void> {
    const saved = await api.replaceTask(task.id, input);
    setEditing(null);
    onNotice(`Saved “${saved.title}”.`);
    reload();
  }

  const id = (name: string) => `${uid}-${name}`;
  return (
    <section className="panel" aria-labelledby={id("heading")}>
      <div className="panel-head">
        <h2 id={id("heading")}>Tasks</h2>
        {load.state === "ready" ? (
          <span className="count">
            {shown.length}
            {load.more ? "+" : ""} {filtered ? "matching" : ""} task{shown.length === 1 ? "" : "s"}
          </span>
        ) : null}
      </div>

      <TaskForm task={null} onSubmit={create} />

      <div className="toolbar" role="search" aria-label="Search and filter tasks">
        <TextField
          label="Search"
          className="grow"
          type="search"
          placeholder="Words in the title or description"
          {...filter("search")}
        />
        <SelectField label="Status" choices={[ANY, ...STATUS_CHOICES]} {...filter("status")} />
        <SelectField label="Priority" choices={[ANY, ...PRIORITY_CHOICES]} {...filter("priority")} />
        <SelectField label="Tag" choices={[ANY, ...knownTags.map((t) => ({ value: t, label: t }))]} {...filter("tag")} />
        <TextField label="Due from" type="date" {...filter("dueFrom")} />
        <TextField label="Due to" type="date" {...filter("dueTo")} />
        <SelectField label="Sort" choices={SORT_CHOICES} {...filter("sort")} />
        {isFiltered(query) ? (
          <button type="button" className="link" onClick={() => {
            const cleared = { ...EMPTY_QUERY, sort: query.sort };
            setQuery(cleared);
            setSent(cleared);
          }}>
            Clear filters
          </button>
        ) : null}
      </div>

      {load.state === "loading" ? (
        <p className="state" role="status">
          Loading tasks…
        </p>
      ) : null}
      {load.state === "error" ? (
        <div className="state state-error" role="alert">
          <p>Could not load tasks: {load.message}</p>
          <button type="button" onClick={reload}>
            Retry
          </button>
        </div>
      ) : null}
      {load.state === "ready" && !filtered && shown.length === 0 ? (
        <p className="state">No tasks yet. Create the first one above.</p>
      ) : null}
      {load.state === "ready" && filtered && shown.length === 0 ? (
        <p className="state">No task matches these filters.</p>
      ) : null}
      {load.state === "ready" && load.more ? (
        <p className="hint">
          Showing the first {MAX_LOADED} matching tasks: narrow the search or the filters to see
          the others.
        </p>
      ) : null}

      <ul className="task-list" aria-label="Tasks">
        {visible.map((task) =>
          editing === task.id ? (
            <li key={task.id} className="task editing">
              <TaskForm
                task={task}
                onSubmit={(input) => save(task, input)}
                onCancel={() => { setEditing(null); }}
              />
            </li>
          ) : (
            <li key={task.id} className={`task status-${task.status}`} aria-label={task.title}>
              <span
                className={`priority priority-${task.priority}`}
                title={`Priority: ${PRIORITY_LABEL[task.priority]}`}
              >
                {PRIORITY_LABEL[task.priority]}
              </span>
              <div className="task-main">
                <p className="task-title">{task.title}</p>
                {task.description ? <p className="task-desc">{task.description}</p> : null}
                <p className="task-meta">
                  <span className={`status-pill pill-${task.status}`}>{STATUS_LABEL[task.status]}</span>
                  <span className={overdue(task) ? "due overdue" : "due"}>
                    {overdue(task) ? "Overdue: " : ""}
                    {formatDue(task.due_at)}
                  </span>
                  {task.tags.map((t) => (
                    <span key={t} className="tag">
                      #{t}
                    </span>
                  ))}
                  {task.reminders.length > 0 ? (
                    <span className="badge reminders">{remindersLabel(task)}</span>
                  ) : null}
                  {task.recurrence ? (
                    <span className="badge repeats" title={task.recurrence.timezone}>
                      Repeats: {task.recurrence.rrule}
                    </span>
                  ) : null}
                </p>
                {history === task.id ? <TaskHistory api={api} taskId={task.id} /> : null}
                {rowError?.id === task.id ? (
                  <p className="field-error" role="alert">
                    {rowError.message}
                  </p>
                ) : null}
              </div>
              <div className="task-actions">
                {task.status !== "done" ? (
                  <button
                    type="button"
                    onClick={() =>
                      void act(
                        task,
                        () => api.replaceTask(task.id, asInput(task, { status: "done" })),
                        `Completed “${task.title}”.`,
                      )
                    }
                  >
                    Complete
                  </button>
                ) : null}
                <button type="button" onClick={() => { setEditing(task.id); }}>
                  Edit
                </button>
                <button
                  type="button"
                  aria-expanded={history === task.id}
                  onClick={() => { setHistory(history === task.id ? null : task.id); }}
                >
                  History
                </button>
                {confirming === task.id ? (
                  <>
                    <button
                      type="button"
                      className="danger"
                      onClick={() => {
                        setConfirming(null);
                        void act(task, () => api.deleteTask(task.id), `Deleted “${task.title}”.`);
                      }}
                    >
                      Confirm delete
                    </button>
                    <button type="button" onClick={() => { setConfirming(null); }}>
                      Keep
                    </button>
                  </>
                ) : (
                  <button type="button" onClick={() => { setConfirming(task.id); }}>
                    Delete
                  </button>
                )}
              </div>
            </li>
          ),
        )}
      </ul>

      {shown.length > PAGE_SIZE ? (
        <nav className="pager" aria-label="Task pages">
          <button type="button" disabled={current === 0} onClick={() => { setPage(current - 1); }}>
            Previous
          </button>
          <span>
            {current * PAGE_SIZE + 1}–{Math.min(shown.length, (current + 1) * PAGE_SIZE)} of{" "}
            {shown.length}
          </span>
          <button
            type="button"
            disabled={current >= pages - 1}
            onClick={() => { setPage(current + 1); }}
          >
            Next
          </button>
        </nav>
      ) : null}
    </section>
  );
}
