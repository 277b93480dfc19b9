import { useEffect, useState } from "react";

import { ApiError, messageOf, type Api } from "./api";
import { ACTIVITY_LABEL, type ActivityType, type AuditEntry } from "./types";

type History =
  | { state: "loading" }
  | { state: "error"; message: string }
  | { state: "ready"; entries: AuditEntry[] };

/** The history's name for an entry's type; one the console does not know yet, as it is. */
function what(type: string): string {
  return type in ACTIVITY_LABEL ? ACTIVITY_LABEL[type as ActivityType].history : type;
}

function describe(entry: AuditEntry): string {
  const data = entry.data;
  if (entry.type === "task.reminder.due") {
    const lateMs = typeof data.late_ms === "number" ? data.late_ms : 0;
    return data.late === true ? `late by ${(lateMs / 1000).toFixed(1)} s` : "on time";
  }
  if (entry.type === "task.updated" && typeof data.status === "string") {
    const version = typeof data.version === "number" ? ` (version ${String(data.version)})` : "";
    return `status ${data.status}${version}`;
  }
  return typeof data.title === "string" ? data.title : "";
}

/** A task's audit trail (GET /api/v1/audit?subject=<id>): what the audit log recorded. */
export function TaskHistory({ api, taskId }: { api: Api; taskId: string }) {
  const [history, setHistory] = useState<History>({ state: "loading" });

  useEffect(() => {
    let current = true;
    api.auditTrail(taskId).then(
      (page) => {
        if (current) setHistory({ state: "ready", entries: page.items });
      },
      (error: unknown) => {
        if (!current) return;
        const message =
          error instanceof ApiError && error.status === 403
            ? "The audit trail needs an API key with the audit:read scope."
            : messageOf(error);
        setHistory({ state: "error", message });
      },
    );
    return () => {
      current = false;
    };
  }, [api, taskId]);

  if (history.state === "loading") return <p className="hint">Loading the audit trail…</p>;
  if (history.state === "error") {
    return (
      <p className="hint" role="status">
        {history.message}
      </p>
    );
  }
  if (history.entries.length === 0) {
    return <p className="hint">Nothing in the audit log for this task yet.</p>;
  }
  return (
    <ol className="history" aria-label="Audit trail">
      {history.entries.map((entry) => (
        <li key={entry.event_id}>
          <time dateTime={entry.occurred_at}>
            {new Date(entry.occurred_at).toLocaleString(undefined, {
              dateStyle: "medium",
              timeStyle: "medium",
            })}
          </time>{" "}
          <strong>{what(entry.type)}</strong> <span>{describe(entry)}</span>
        </li>
      ))}
    </ol>
  );
}
