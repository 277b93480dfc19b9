"""Request and response bodies. Every request model forbids unknown fields.

Strings are "clean": no NUL characters and no lone surrogates, because PostgreSQL text cannot
store either; rejecting them here turns what would be a database error into a 422.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from apps.events_api import recurrence


def _clean(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _iso8601_only(value: object) -> object:
    """Refuse a bare number: pydantic would read it as Unix seconds or milliseconds (switching
    at 2e10), so 20000000000 became the year 2603 and 20000000001 a day in 1970."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError(
            "must be an ISO 8601 date-time with a time zone, e.g. 2030-01-31T09:00:00Z;"
            " a bare number is not accepted"
        )
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the representable UTC range") from None


_Clean = AfterValidator(_clean)
Category = Annotated[str, StringConstraints(min_length=1, max_length=64), _Clean]
Message = Annotated[str, StringConstraints(min_length=1, max_length=2000), _Clean]
LongText = Annotated[str, StringConstraints(max_length=10_000), _Clean]
FieldKey = Annotated[str, StringConstraints(min_length=1, max_length=64), _Clean]
FieldValue = Annotated[str, StringConstraints(max_length=1000), _Clean]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200), _Clean]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50), _Clean]

UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso8601_only), AfterValidator(_utc)]

MAX_FIELDS = 50
MAX_TAGS = 20
MAX_REMINDERS = 10
MAX_REMINDER_OFFSET = timedelta(days=366)


def _offset(value: timedelta) -> timedelta:
    if value < timedelta(0) or value > MAX_REMINDER_OFFSET:
        raise ValueError("must be between 0 and 366 days before due_at")
    if value.microseconds:
        raise ValueError("must be a whole number of seconds")
    return value


ReminderOffset = Annotated[timedelta, AfterValidator(_offset)]
"""How long before `due_at` a reminder fires: an ISO 8601 duration (`PT1H`, `PT10M`, `P1D`) or
seconds. Offsets are exact durations: "P1D" is 24 h even across a daylight-saving change."""


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# --- events ------------------------------------------------------------------------------------


class EventIn(RequestModel):
    """A notification event (PingFlow-style): what happened, in a category, with extra fields."""

    category: Category = Field(
        description="What kind of event, e.g. `signup`, `payment`, `deploy`.", examples=["signup"]
    )
    message: Message = Field(
        description="A one-line human summary.", examples=["New user signed up"]
    )
    description: LongText | None = Field(default=None, description="Longer free text.")
    fields: dict[FieldKey, FieldValue] = Field(
        default_factory=dict,
        max_length=MAX_FIELDS,
        description=f"Extra key/value strings (at most {MAX_FIELDS}).",
        examples=[{"plan": "pro"}],
    )


class EventAccepted(BaseModel):
    id: uuid.UUID
    status: Literal["accepted"] = "accepted"
    correlation_id: str


# --- tasks -------------------------------------------------------------------------------------


class TaskStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskPriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


CLOSED_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.CANCELLED})
"""Closing an occurrence (done, or cancelled: skipped) creates a series' next instance."""


class Recurrence(RequestModel):
    """A series: an RFC 5545 RRULE evaluated in an IANA zone, started at the task's `due_at`."""

    rrule: Annotated[str, StringConstraints(min_length=1, max_length=500), _Clean] = Field(
        description="One RRULE line, e.g. `FREQ=WEEKLY;BYDAY=MO` or `FREQ=MONTHLY;BYMONTHDAY=31`;"
        " FREQ is DAILY, WEEKLY, MONTHLY or YEARLY. No DTSTART: the task's due_at starts it.",
        examples=["FREQ=WEEKLY;BYDAY=MO,WE"],
    )
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64), _Clean] = Field(
        description="IANA time zone the rule's wall-clock times are in.", examples=["Europe/Berlin"]
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        recurrence.zone(value)
        return value

    @field_validator("rrule")
    @classmethod
    def _valid_rule(cls, value: str) -> str:
        return recurrence.parse_rule(value).text


class TaskIn(RequestModel):
    """A task as created (POST) or fully replaced (PUT)."""

    title: Title
    description: LongText | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: TaskPriority = TaskPriority.MEDIUM
    due_at: UtcDatetime | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    reminders: list[ReminderOffset] = Field(
        default_factory=list,
        max_length=MAX_REMINDERS,
        description='Offsets before due_at at which a reminder fires, e.g. `["PT1H", "PT10M"]`.',
    )
    recurrence: Recurrence | None = Field(
        default=None, description="Makes the task a series; its due_at is the first occurrence."
    )

    @field_validator("reminders")
    @classmethod
    def _reminders_need_due(cls, value: list[timedelta], info: ValidationInfo) -> list[timedelta]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat an offset")
        if value and "due_at" in info.data and info.data["due_at"] is None:
            raise ValueError("need a due_at to count back from")
        return sorted(value, reverse=True)

    @field_validator("recurrence")
    @classmethod
    def _rule_needs_due(cls, value: Recurrence | None, info: ValidationInfo) -> Any:
        # Whether the rule has an occurrence from due_at on is checked by the route
        # (`recurrence.check_series`): proving it can take a search, which must not run on
        # the event loop, where request bodies are validated.
        if value is not None and "due_at" in info.data and info.data["due_at"] is None:
            raise ValueError("needs a due_at: it is the series' first occurrence")
        return value


class TaskOut(BaseModel):
    id: uuid.UUID
    title: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    due_at: datetime | None
    tags: list[str]
    reminders: list[timedelta]
    recurrence: Recurrence | None
    series_id: uuid.UUID | None = Field(description="Shared by every instance of a series.")
    occurrence_at: datetime | None = Field(
        description="The series occurrence this instance stands for (due_at may be moved)."
    )
    version: int
    created_at: datetime
    updated_at: datetime


class TaskSort(StrEnum):
    """Sort keys of GET /api/v1/tasks; a leading `-` sorts descending. Tasks without a due date
    sort last either way."""

    CREATED = "created_at"
    CREATED_DESC = "-created_at"
    UPDATED = "updated_at"
    UPDATED_DESC = "-updated_at"
    DUE = "due_at"
    DUE_DESC = "-due_at"
    PRIORITY = "priority"
    PRIORITY_DESC = "-priority"
    TITLE = "title"
    TITLE_DESC = "-title"


class TaskPage(BaseModel):
    items: list[TaskOut]
    limit: int
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (same filters and sort); null at the end."
    )


# --- read APIs ---------------------------------------------------------------------------------


class DeliveryStatus(BaseModel):
    channel: str
    status: Literal["sending", "sent", "dead"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    first_attempt_at: datetime
    sent_at: datetime | None


class EventOut(BaseModel):
    """An accepted event, where it went (the notifier's records) and whether audit has it.

    `deliveries` and `audited` are null when this database holds no such app table (a local run
    with a database per app); in deployed environments every app shares one database."""

    id: uuid.UUID
    category: str
    message: str
    description: str | None
    fields: dict[str, str]
    correlation_id: str
    received_at: datetime
    deliveries: list[DeliveryStatus] | None
    audited: bool | None
    audited_at: datetime | None


class AuditEntry(BaseModel):
    event_id: uuid.UUID
    type: str
    subject: str
    source: str
    correlation_id: str
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]


class AuditPage(BaseModel):
    items: list[AuditEntry]
    limit: int
    next_cursor: str | None


class Problem(BaseModel):
    """Error body for everything except 422 (which carries FastAPI's field-level `detail` list)."""

    detail: str
