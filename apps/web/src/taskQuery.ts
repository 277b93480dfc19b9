// Search, filter and sort of tasks.
//
// events-api's GET /api/v1/tasks has paging (limit/offset) and nothing else yet; its query
// parameters are being built (issue 15). Until then the console reads the caller's tasks with
// the API's own paging (`loadTasks`) and applies the query here (`applyQuery`). When the API
// gains them, `loadTasks` sends the query instead and `applyQuery` becomes the identity: the
// components do not change.

import type { Api } from "./api";
import { TASK_PRIORITIES, type Task, type TaskPriority, type TaskStatus } from "./types";

export const SORTS = {
  created: "Oldest first",
  newest: "Newest first",
  due: "Due date",
  priority: "Priority",
  title: "Title",
} as const;
export type Sort = keyof typeof SORTS;

export interface TaskQuery {
  search: string;
  status: TaskStatus | "";
  priority: TaskPriority | "";
  tag: string;
  dueFrom: string; // yyyy-mm-dd, local day, inclusive
  dueTo: string;
  sort: Sort;
}

export const EMPTY_QUERY: TaskQuery = {
  search: "",
  status: "",
  priority: "",
  tag: "",
  dueFrom: "",
  dueTo: "",
  sort: "created",
};

export const API_PAGE = 100; // the API's maximum `limit`
export const MAX_LOADED = 1000;

export interface Loaded {
  tasks: Task[];
  total: number;
}

/** Every task of the caller (up to MAX_LOADED), page by page with the API's limit/offset. */
export async function loadTasks(api: Api): Promise<Loaded> {
  const first = await api.listTasks(API_PAGE, 0);
  const tasks: Task[] = [...first.items];
  let total = first.total;
  while (tasks.length < total && tasks.length < MAX_LOADED) {
    const page = await api.listTasks(API_PAGE, tasks.length);
    if (page.items.length === 0) break;
    total = page.total;
    tasks.push(...page.items);
  }
  return { tasks, total };
}

function localDayStart(day: string): number {
  return new Date(`${day}T00:00:00`).getTime();
}

const PRIORITY_RANK = Object.fromEntries(TASK_PRIORITIES.map((p, i) => [p, i])) as Record<
  TaskPriority,
  number
>;

export function applyQuery(tasks: Task[], query: TaskQuery): Task[] {
  const needle = query.search.trim().toLowerCase();
  const from = query.dueFrom ? localDayStart(query.dueFrom) : null;
  const to = query.dueTo ? localDayStart(query.dueTo) + 86_400_000 : null;
  const matching = tasks.filter((task) => {
    if (query.status && task.status !== query.status) return false;
    if (query.priority && task.priority !== query.priority) return false;
    if (query.tag && !task.tags.includes(query.tag)) return false;
    if (from !== null || to !== null) {
      if (task.due_at === null) return false;
      const due = new Date(task.due_at).getTime();
      if (from !== null && due < from) return false;
      if (to !== null && due >= to) return false;
    }
    if (needle) {
      const haystack = [task.title, task.description ?? "", ...task.tags].join(" ").toLowerCase();
      if (!haystack.includes(needle)) return false;
    }
    return true;
  });
  const byCreated = (a: Task, b: Task) => a.created_at.localeCompare(b.created_at);
  const compare: Record<Sort, (a: Task, b: Task) => number> = {
    created: byCreated,
    newest: (a, b) => byCreated(b, a),
    due: (a, b) =>
      (a.due_at ?? "9999").localeCompare(b.due_at ?? "9999") || byCreated(a, b),
    priority: (a, b) => PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority] || byCreated(a, b),
    title: (a, b) => a.title.localeCompare(b.title) || byCreated(a, b),
  };
  return [...matching].sort(compare[query.sort]);
}

export function isFiltered(query: TaskQuery): boolean {
  return (Object.keys(EMPTY_QUERY) as (keyof TaskQuery)[]).some(
    (k) => k !== "sort" && query[k] !== EMPTY_QUERY[k],
  );
}
