"""The topics spec the renderer puts in the Job's `TOPICS_SPEC` variable (JSON)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel)


class TopicSpec(_Model):
    name: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(ge=1)
    retention_ms: int = Field(ge=-1)


class TopicsSpec(_Model):
    replication_factor: int = Field(ge=1)
    min_insync_replicas: int = Field(ge=1)
    topics: tuple[TopicSpec, ...]


def parse(raw: str) -> TopicsSpec:
    return TopicsSpec.model_validate_json(raw)
