"""Bring the broker's topics to the spec, idempotently, through kafka-python's admin client.

Missing topics are created; existing ones get more partitions when the spec asks for more
(Kafka cannot remove partitions, so fewer is reported and left alone) and their retention and
min.insync.replicas set when they differ. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kafka.admin import (
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    NewPartitions,
    NewTopic,
)

from apps.topics_job.spec import TopicSpec, TopicsSpec

log = logging.getLogger("apps.topics_job")


@dataclass
class Outcome:
    created: list[str] = field(default_factory=list)
    partitions_raised: list[str] = field(default_factory=list)
    configs_updated: list[str] = field(default_factory=list)
    cannot_shrink: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.partitions_raised or self.configs_updated)


def _desired_configs(topic: TopicSpec, spec: TopicsSpec) -> dict[str, str]:
    return {
        "retention.ms": str(topic.retention_ms),
        "min.insync.replicas": str(min(spec.min_insync_replicas, spec.replication_factor)),
    }


def _partition_counts(admin: KafkaAdminClient, names: list[str]) -> dict[str, int]:
    existing = set(admin.list_topics())
    wanted = [name for name in names if name in existing]
    if not wanted:
        return {}
    return {t["name"]: len(t["partitions"]) for t in admin.describe_topics(wanted)}


def _current_configs(admin: KafkaAdminClient, name: str, keys: list[str]) -> dict[str, str]:
    """kafka-python 3 answers {"topic": {name: {key: {"value": ...}}}}."""
    result = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name)], config_filter="all"
    )
    entries: dict[str, Any] = result.get("topic", {}).get(name, {})
    return {key: str(entries[key]["value"]) for key in keys if key in entries}


def reconcile(admin: KafkaAdminClient, spec: TopicsSpec) -> Outcome:
    outcome = Outcome()
    names = [t.name for t in spec.topics]
    counts = _partition_counts(admin, names)
    missing = [t for t in spec.topics if t.name not in counts]
    if missing:
        admin.create_topics(
            [
                NewTopic(
                    name=t.name,
                    num_partitions=t.partitions,
                    replication_factor=spec.replication_factor,
                    topic_configs=_desired_configs(t, spec),
                )
                for t in missing
            ]
        )
        outcome.created = [t.name for t in missing]
    raise_to = {
        t.name: NewPartitions(total_count=t.partitions)
        for t in spec.topics
        if t.name in counts and counts[t.name] < t.partitions
    }
    if raise_to:
        admin.create_partitions(raise_to)
        outcome.partitions_raised = sorted(raise_to)
    outcome.cannot_shrink = sorted(
        t.name for t in spec.topics if t.name in counts and counts[t.name] > t.partitions
    )
    for t in spec.topics:
        if t.name not in counts:
            continue
        desired = _desired_configs(t, spec)
        current = _current_configs(admin, t.name, list(desired))
        changes = {k: v for k, v in desired.items() if current.get(k) != v}
        if changes:
            admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t.name, configs=changes)])
            outcome.configs_updated.append(t.name)
    for name in outcome.cannot_shrink:
        log.warning("topic %s has more partitions than the spec; Kafka cannot shrink it", name)
    return outcome
