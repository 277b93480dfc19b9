"""Turn an envelope into the human text every chat channel shows.

The chat formats differ only in how they wrap the same three things: a title, a body line and a
few key/value fields. Keeping that extraction here means each channel formatter is a thin,
separately testable mapping, and a new event type changes one function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.common.envelope import EventEnvelope

MAX_FIELDS = 10
"""Chat messages are read on phones; more than a handful of fields is noise."""

MAX_FIELD_CHARS = 200


@dataclass(frozen=True)
class Summary:
    title: str
    body: str
    fields: tuple[tuple[str, str], ...]

    def as_text(self) -> str:
        """Plain text for channels without rich formatting (Telegram, WhatsApp, Slack fallback)."""
        lines = [self.title]
        if self.body:
            lines.append(self.body)
        lines.extend(f"{key}: {value}" for key, value in self.fields)
        return "\n".join(lines)


def _clip(value: Any, limit: int = MAX_FIELD_CHARS) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summarize(envelope: EventEnvelope) -> Summary:
    data = envelope.data
    if envelope.type == "event.received":
        category = str(data.get("category") or "event")
        body = str(data.get("message") or data.get("description") or "")
        extra = data.get("fields")
        fields = tuple(
            (str(k), _clip(v)) for k, v in (extra.items() if isinstance(extra, dict) else ())
        )
        return Summary(
            title=f"[{category}] {envelope.subject}", body=body, fields=fields[:MAX_FIELDS]
        )
    if envelope.type == "task.reminder.due":
        return _reminder(envelope)
    # task.created / task.updated / task.deleted
    action = envelope.type.split(".", 1)[1]
    title = str(data.get("title") or envelope.subject)
    task_fields = tuple(
        (key, _clip(data[key]))
        for key in ("status", "priority", "due_at")
        if data.get(key) is not None
    )
    return Summary(
        title=f"Task {action}: {title}",
        body=str(data.get("description") or ""),
        fields=task_fields,
    )


def _reminder(envelope: EventEnvelope) -> Summary:
    """`task.reminder.due`: what is due when, and how late the reminder is if it is."""
    data = envelope.data
    title = str(data.get("title") or data.get("task_id") or envelope.subject)
    fields = [("due_at", _clip(data.get("due_at")))]
    if data.get("late"):
        fields.append(("late_by", f"{int(data.get('late_ms') or 0) / 1000:.1f} s"))
    return Summary(title=f"Reminder: {title}", body="", fields=tuple(fields))
