"""Request and response bodies. Every request model forbids unknown fields.

Strings are "clean": no NUL characters and no lone surrogates, because PostgreSQL text cannot
store either; rejecting them here turns what would be a database error into a 422.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)


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


class TaskIn(RequestModel):
    """A task as created (POST) or fully replaced (PUT)."""

    title: Title
    description: LongText | None = None
    status: TaskStatus = TaskStatus.TODO
    priority: TaskPriority = TaskPriority.MEDIUM
    due_at: UtcDatetime | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)


class TaskOut(BaseModel):
    id: uuid.UUID
    title: str
    description: str | None
    status: TaskStatus
    priority: TaskPriority
    due_at: datetime | None
    tags: list[str]
    version: int
    created_at: datetime
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskOut]
    limit: int
    offset: int
    total: int


class Problem(BaseModel):
    """Error body for everything except 422 (which carries FastAPI's field-level `detail` list)."""

    detail: str
