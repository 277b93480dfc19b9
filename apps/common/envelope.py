"""The one event envelope every app produces and consumes, versioned and validated.

`decode` is the single entry point for bytes from Kafka: whatever arrives, it returns an
`EventEnvelope` or raises `EnvelopeError` with a machine-readable `reason`, so a consumer can
dead-letter a poison message instead of crashing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    field_validator,
)

EventType = Literal[
    "event.received", "task.created", "task.updated", "task.deleted", "task.reminder.due"
]
EVENT_TYPES: tuple[str, ...] = (
    "event.received",
    "task.created",
    "task.updated",
    "task.deleted",
    "task.reminder.due",  # published by the reminders app to the `reminders` topic
)

CURRENT_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)

EnvelopeErrorReason = Literal["invalid_json", "unsupported_version", "schema_violation"]


class EnvelopeError(ValueError):
    """Raw bytes are not a usable envelope; `reason` is stable, `detail` is for humans."""

    def __init__(self, reason: EnvelopeErrorReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: EnvelopeErrorReason = reason
        self.detail = detail


class EventEnvelope(BaseModel):
    """What travels on the `events` and `tasks` topics; `subject` is the Kafka key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID
    type: EventType
    version: int = CURRENT_VERSION
    source: str = Field(min_length=1, max_length=200)
    occurred_at: AwareDatetime
    correlation_id: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported version {value}; supported: {SUPPORTED_VERSIONS}")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00+01:00 has no UTC datetime
            raise ValueError("occurred_at is outside the representable UTC range") from None


def new_envelope(
    type: EventType,
    *,
    source: str,
    subject: str,
    correlation_id: str,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> EventEnvelope:
    """Build a current-version envelope with a fresh id."""
    return EventEnvelope(
        id=uuid.uuid4(),
        type=type,
        version=CURRENT_VERSION,
        source=source,
        occurred_at=occurred_at or datetime.now(UTC),
        correlation_id=correlation_id,
        subject=subject,
        data=data,
    )


def encode(envelope: EventEnvelope) -> bytes:
    """Serialise to compact UTF-8 JSON (ISO-8601 timestamps, UUIDs as strings)."""
    return envelope.model_dump_json().encode("utf-8")


def decode(raw: bytes | bytearray | memoryview | str | None) -> EventEnvelope:
    """Parse and validate; raises only `EnvelopeError`, never another exception type."""
    try:
        if raw is None:
            raise ValueError("empty record value")
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        payload = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
        raise EnvelopeError("invalid_json", str(exc)[:500]) from None
    if not isinstance(payload, dict):
        raise EnvelopeError(
            "schema_violation", f"expected a JSON object, got {type(payload).__name__}"
        )
    # The version decides how to read everything else, so it is checked first and on its own:
    # a v2 envelope with a different shape is "unsupported_version", not a "schema_violation".
    version = payload.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise EnvelopeError("schema_violation", f"version must be an integer, got {version!r:.50}")
    if version not in SUPPORTED_VERSIONS:
        raise EnvelopeError(
            "unsupported_version", f"version {version} is not one of {list(SUPPORTED_VERSIONS)}"
        )
    try:
        return EventEnvelope.model_validate(payload)
    except ValidationError as exc:
        detail = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise EnvelopeError("schema_violation", detail[:1000]) from None
    except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise EnvelopeError("schema_violation", str(exc)[:500]) from None


# --- the consumers' hot path -------------------------------------------------------------------

_UUID_TEXT = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# RFC 3339 in UTC with at most microseconds, as `encode` writes it. Narrower than what pydantic
# reads on purpose: PostgreSQL rounds a seventh fractional digit where pydantic truncates it.
_UTC_TIME_TEXT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|\+00:00)$"
)
# Python's json module reads these non-standard tokens, PostgreSQL's jsonb does not, and
# `encode` never writes them: an envelope holding one takes the slow path to be normalised.
_NON_STANDARD_NUMBERS = (b"NaN", b"Infinity")


class _CanonicalEnvelope(BaseModel):
    """The `EventEnvelope` contract with every check inside pydantic-core, no Python validator.

    It accepts a subset of what `decode` accepts: envelopes already in the form `encode` writes
    (lower-case hyphenated id, integer version, RFC 3339 UTC time, `data` present). Whatever it
    accepts, `decode` accepts with the same field values; tests/apps/test_common_envelope.py
    checks that implication on generated inputs.
    """

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(pattern=_UUID_TEXT)]
    type: EventType
    version: Annotated[int, Strict(), Field(ge=CURRENT_VERSION, le=CURRENT_VERSION)]
    source: _Text
    occurred_at: Annotated[str, StringConstraints(pattern=_UTC_TIME_TEXT)]
    correlation_id: _Text
    subject: _Text
    data: dict[str, Any]


def canonical_json(raw: bytes | bytearray | memoryview | str | None) -> bytes:
    """Validate like `decode` and return the envelope as JSON for storage.

    For what every producer here sends (`encode` output) that is `raw` itself, checked in one
    pydantic-core pass: about half the cost of `decode` plus `encode`, which is what the audit
    sink spends per record. Anything else goes through `decode` and comes back re-encoded, or
    raises its `EnvelopeError`.
    """
    if isinstance(raw, bytes | bytearray | memoryview):
        data = bytes(raw)
        if not any(token in data for token in _NON_STANDARD_NUMBERS):
            try:
                fast = _CanonicalEnvelope.model_validate_json(data)
            except ValidationError:
                pass
            else:
                try:
                    datetime.fromisoformat(fast.occurred_at)  # the pattern lets 2026-13-45 by
                except ValueError:
                    pass
                else:
                    return data
    return encode(decode(raw))
