// Search, filter and sort of tasks: the console's query, sent to events-api's GET /api/v1/tasks
// (filters, PostgreSQL full-text search, sorts and cursor pages are the API's; nothing is
// filtered here). `loadTasks` follows the cursors up to MAX_LOADED matching tasks.

import type { Api } from "./api";
import type { Choice, Task, TaskPriority, TaskStatus } from "./types";

/** The console's sort choices, each an API `sort` value. */
export const SORTS = {
  created: { label: "Oldest first", api: "created_at" },
  newest: { label: "Newest first", api: "-created_at" },
  due: { label: "Due date", api: "due_at" },
  priority: { label: "Priority", api: "-priority" },
  title: { label: "Title", api: "title" },
  updated: { label: "Recently changed", api: "-updated_at" },
} as const;
export type Sort = keyof typeof SORTS;

export const SORT_CHOICES: readonly Choice<Sort>[] = (Object.keys(SORTS) as Sort[]).map((value) => ({
  value,
  label: SORTS[value].label,
}));

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
  more: boolean; // more tasks match than were loaded
}

function localDayStart(day: string): Date {
  return new Date(`${day}T00:00:00`);
}

/** The API query parameters of a console query. */
export function toParams(query: TaskQuery): URLSearchParams {
  const params = new URLSearchParams({ limit: String(API_PAGE), sort: SORTS[query.sort].api });
  const text = query.search.trim();
  if (text) params.set("q", text);
  if (query.status) params.set("status", query.status);
  if (query.priority) params.set("priority", query.priority);
  if (query.tag) params.set("tag", query.tag);
  if (query.dueFrom) params.set("due_from", localDayStart(query.dueFrom).toISOString());
  if (query.dueTo) {
    const end = localDayStart(query.dueTo);
    end.setDate(end.getDate() + 1); // the whole last day
    params.set("due_to", end.toISOString());
  }
  return params;
}

/** The tasks matching the query (up to MAX_LOADED), page by page with the API's cursors. */
export async function loadTasks(api: Api, query: TaskQuery): Promise<Loaded> {
  const params = toParams(query);
  const tasks: Task[] = [];
  for (;;) {
    const page = await api.listTasks(params);
    tasks.push(...page.items);
    if (page.next_cursor === null) return { tasks, more: false };
    if (tasks.length >= MAX_LOADED) return { tasks, more: true };
    params.set("cursor", page.next_cursor);
  }
}

export function isFiltered(query: TaskQuery): boolean {
  return (Object.keys(EMPTY_QUERY) as (keyof TaskQuery)[]).some(
    (k) => k !== "sort" && query[k] !== EMPTY_QUERY[k],
  );
}

// --- reminders: ISO 8601 durations <-> minutes --------------------------------------------------

const DURATION = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/** Minutes in an ISO 8601 duration as the API writes them ("PT1H", "P1D", "PT10M"). */
export function durationMinutes(iso: string): number | null {
  const match = DURATION.exec(iso);
  if (!match) return null;
  const [, days, hours, minutes, seconds] = match;
  return (
    Number(days ?? 0) * 1440 +
    Number(hours ?? 0) * 60 +
    Number(minutes ?? 0) +
    Number(seconds ?? 0) / 60
  );
}

/** "1 h 10 min" for a number of minutes. */
export function formatMinutes(total: number): string {
  const days = Math.floor(total / 1440);
  const hours = Math.floor((total % 1440) / 60);
  const minutes = Math.round(total % 60);
  const parts = [days ? `${days} d` : "", hours ? `${hours} h` : "", minutes ? `${minutes} min` : ""];
  return parts.filter(Boolean).join(" ") || "at due time";
}
