// The events-api client: same origin (the console is served by events-api at /console/), the
// API key only in the Authorization header, never in a URL and never logged.

import type { AuditPage, EventAccepted, EventIn, Task, TaskIn, TaskPage } from "./types";

/** Field-level messages of a 422, keyed by the field's path below the body (`title`, `tags.0`). */
export type FieldErrors = Record<string, string>;

export class ApiError extends Error {
  readonly status: number;
  readonly fields: FieldErrors;

  constructor(status: number, message: string, fields: FieldErrors = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.fields = fields;
  }
}

interface ValidationItem {
  loc: (string | number)[];
  msg: string;
}

function isValidationList(detail: unknown): detail is ValidationItem[] {
  return (
    Array.isArray(detail) &&
    detail.every((d) => typeof d === "object" && d !== null && "loc" in d && "msg" in d)
  );
}

async function errorFrom(response: Response): Promise<ApiError> {
  let detail: unknown = response.statusText;
  try {
    detail = ((await response.json()) as { detail?: unknown }).detail ?? detail;
  } catch {
    // not JSON (a proxy's error page): keep the status text
  }
  if (isValidationList(detail)) {
    const fields: FieldErrors = {};
    for (const item of detail) {
      const [where, ...path] = item.loc;
      const key = where === "body" && path.length > 0 ? path.join(".") : item.loc.join(".");
      fields[key] ??= item.msg;
    }
    return new ApiError(response.status, "Some fields need attention.", fields);
  }
  const text = typeof detail === "string" ? detail : JSON.stringify(detail);
  if (response.status === 401) return new ApiError(401, `That API key was not accepted (${text}).`);
  if (response.status === 403) return new ApiError(403, `Not allowed with this API key: ${text}.`);
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    return new ApiError(429, `Rate limit reached${wait ? `; retry in ${wait} s` : ""}: ${text}.`);
  }
  return new ApiError(response.status, `${text} (HTTP ${response.status})`);
}

export class Api {
  readonly #key: string;

  constructor(key: string) {
    this.#key = key;
  }

  async #request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.#key}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      throw new ApiError(0, "The API could not be reached. Check the connection and retry.");
    }
    if (!response.ok) throw await errorFrom(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  get authorization(): string {
    return `Bearer ${this.#key}`;
  }

  /** One page of GET /api/v1/tasks; `params` are its query parameters (filters, sort, cursor). */
  listTasks(params: URLSearchParams): Promise<TaskPage> {
    return this.#request("GET", `/api/v1/tasks?${params.toString()}`);
  }

  /** The audit trail of one task (or event) id; needs a key with the audit:read scope. */
  auditTrail(subject: string, cursor: string | null = null): Promise<AuditPage> {
    const query = new URLSearchParams({ subject, limit: "200" });
    if (cursor) query.set("cursor", cursor);
    return this.#request("GET", `/api/v1/audit?${query.toString()}`);
  }

  createTask(task: TaskIn): Promise<Task> {
    return this.#request("POST", "/api/v1/tasks", task);
  }

  replaceTask(id: string, task: TaskIn): Promise<Task> {
    return this.#request("PUT", `/api/v1/tasks/${encodeURIComponent(id)}`, task);
  }

  deleteTask(id: string): Promise<undefined> {
    return this.#request("DELETE", `/api/v1/tasks/${encodeURIComponent(id)}`);
  }

  sendEvent(event: EventIn): Promise<EventAccepted> {
    return this.#request("POST", "/api/v1/events", event);
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
