import { ACTIVITY_LABEL, type Activity, type FlowStatus } from "./types";
import type { StreamState } from "./stream";

const STATE_LABEL: Record<StreamState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stopped: "Stopped",
};

function summary(activity: Activity): string {
  const data = activity.data;
  if (activity.type === "event.received") {
    return `${typeof data.category === "string" ? data.category : "event"}: ${
      typeof data.message === "string" ? data.message : ""
    }`;
  }
  if (activity.type === "task.deleted") return `Task ${activity.subject.slice(0, 8)}`;
  return typeof data.title === "string" ? data.title : activity.subject;
}

function Progress({ status }: { status: FlowStatus }) {
  return (
    <ul className="progress" aria-label="Progress">
      <li className="step done">Accepted</li>
      {status.deliveries === null ? null : status.deliveries.length === 0 ? (
        <li className="step pending">Not delivered yet</li>
      ) : (
        status.deliveries.map((d) => (
          <li
            key={d.channel}
            className={`step ${d.status === "sent" ? "done" : d.status === "dead" ? "failed" : "pending"}`}
          >
            {d.status === "sent"
              ? `Delivered: ${d.channel}`
              : d.status === "dead"
                ? `Failed: ${d.channel} (${d.attempts} attempts)`
                : `Sending: ${d.channel}`}
          </li>
        ))
      )}
      {status.audited === null ? null : (
        <li className={`step ${status.audited ? "done" : "pending"}`}>
          {status.audited ? "Audited" : "Not audited yet"}
        </li>
      )}
    </ul>
  );
}

interface LiveFeedProps {
  items: Activity[];
  state: StreamState;
  detail: string | undefined;
}

/** The caller's events and task changes as they flow, newest first. */
export function LiveFeed({ items, state, detail }: LiveFeedProps) {
  return (
    <section className="panel" aria-labelledby="feed-heading">
      <div className="panel-head">
        <h2 id="feed-heading">Live activity</h2>
        <span className={`live live-${state}`} role="status">
          {STATE_LABEL[state]}
          {detail ? `: ${detail}` : ""}
        </span>
      </div>
      {items.length === 0 ? (
        <p className="state">Nothing yet: send an event or change a task.</p>
      ) : null}
      {/* Focusable: the list scrolls, and keyboard users must be able to scroll it. */}
      <ol className="feed" aria-label="Activity" tabIndex={0}>
        {items.map((activity) => (
          <li key={activity.id} className={`activity type-${activity.type.replace(".", "-")}`}>
            <div className="activity-head">
              <span className="type">{ACTIVITY_LABEL[activity.type].feed}</span>
              <time dateTime={activity.occurred_at}>
                {new Date(activity.occurred_at).toLocaleTimeString()}
              </time>
            </div>
            <p className="activity-summary">{summary(activity)}</p>
            <Progress status={activity.status} />
          </li>
        ))}
      </ol>
    </section>
  );
}
