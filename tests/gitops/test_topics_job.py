"""The PreSync topics Job against a real Kafka-protocol broker (Tansu, started by the test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import IncompatibleBrokerVersion

from apps.topics_job.reconcile import reconcile
from apps.topics_job.spec import parse
from platform_cli.embedded import kafka_broker

# Slow tier: a real broker and the Job as a real process.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    with kafka_broker() as broker:
        yield broker.bootstrap


@pytest.fixture
def admin(bootstrap: str) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        yield client
    finally:
        client.close()


def _spec(prefix: str, partitions: int = 2, retention_ms: int = 3_600_000) -> str:
    return json.dumps(
        {
            "replicationFactor": 1,
            "minInsyncReplicas": 1,
            "topics": [
                {"name": f"{prefix}.a", "partitions": partitions, "retentionMs": retention_ms},
                {"name": f"{prefix}.a.dlq", "partitions": 1, "retentionMs": retention_ms * 4},
            ],
        }
    )


def _run_job(bootstrap: str, spec: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "TOPICS_SPEC": spec,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_AUTH_MODE": "plaintext",
    }
    result = subprocess.run(
        [sys.executable, "-m", "apps.topics_job"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    line = next(line for line in result.stderr.splitlines() if "topics.reconciled" in line)
    outcome: dict[str, Any] = json.loads(line)
    return outcome


def _retention(admin: KafkaAdminClient, topic: str) -> str:
    result = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
    )
    return str(result["topic"][topic]["retention.ms"]["value"])


def test_job_creates_missing_topics_then_changes_nothing(
    bootstrap: str, admin: KafkaAdminClient
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    first = _run_job(bootstrap, _spec(prefix))
    assert first["created"] == [f"{prefix}.a", f"{prefix}.a.dlq"]
    described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics([f"{prefix}.a"])}
    assert described == {f"{prefix}.a": 2}
    assert _retention(admin, f"{prefix}.a.dlq") == str(3_600_000 * 4)
    second = _run_job(bootstrap, _spec(prefix))
    assert second["created"] == second["configs_updated"] == second["partitions_raised"] == []


def test_retention_change_is_applied_once(admin: KafkaAdminClient) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    reconcile(admin, parse(_spec(prefix)))
    changed = reconcile(admin, parse(_spec(prefix, retention_ms=7_200_000)))
    assert changed.configs_updated == [f"{prefix}.a", f"{prefix}.a.dlq"]
    assert _retention(admin, f"{prefix}.a") == "7200000"
    assert not reconcile(admin, parse(_spec(prefix, retention_ms=7_200_000))).changed


def test_fewer_partitions_in_the_spec_are_reported_not_applied(admin: KafkaAdminClient) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    reconcile(admin, parse(_spec(prefix, partitions=3)))
    outcome = reconcile(admin, parse(_spec(prefix, partitions=1)))
    assert outcome.cannot_shrink == [f"{prefix}.a"]
    assert not outcome.changed


def test_more_partitions_in_the_spec_are_added(admin: KafkaAdminClient) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    reconcile(admin, parse(_spec(prefix, partitions=1)))
    try:
        outcome = reconcile(admin, parse(_spec(prefix, partitions=3)))
    except IncompatibleBrokerVersion:
        # Runs in full against a real Kafka (set KAFKA_BOOTSTRAP_SERVERS); Tansu lacks the API.
        pytest.skip("the embedded Tansu broker does not implement CreatePartitions")
    assert outcome.partitions_raised == [f"{prefix}.a"]


def test_rendered_localstack_spec_runs_against_a_broker(
    rendered: dict[str, str], admin: KafkaAdminClient
) -> None:
    job = yaml.safe_load(rendered["localstack/kafka-topics/job-kafka-topics.yaml"])
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    spec = parse(next(var["value"] for var in env if var["name"] == "TOPICS_SPEC"))
    assert spec.replication_factor == 1  # the localstack stack runs one broker
    reconcile(admin, spec)
    names = {t.name for t in spec.topics}
    assert names == {"events", "tasks", "reminders", "notifier.dlq", "audit.dlq", "reminders.dlq"}
    assert names <= set(admin.list_topics())
    assert not reconcile(admin, spec).changed


class _RecordingAdmin:
    """Stands in for the broker only where Tansu lacks the API (CreatePartitions): it answers the
    reads from fixed state and records the requests the job sends."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions
        self.raised: dict[str, int] = {}

    def list_topics(self) -> list[str]:
        return list(self.partitions)

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": n, "partitions": [{}] * self.partitions[n]} for n in names]

    def describe_configs(self, resources: list[ConfigResource], **_: Any) -> dict[str, Any]:
        name = resources[0].name
        values = {"retention.ms": "3600000", "min.insync.replicas": "1"}
        if name.endswith(".dlq"):
            values["retention.ms"] = str(3_600_000 * 4)
        return {"topic": {name: {k: {"value": v} for k, v in values.items()}}}

    def create_partitions(self, request: dict[str, Any]) -> None:
        self.raised = {name: new.total_count for name, new in request.items()}


def test_partition_raise_request_asks_for_the_spec_total() -> None:
    fake = _RecordingAdmin({"p.a": 1, "p.a.dlq": 1})
    outcome = reconcile(fake, parse(_spec("p", partitions=3)))
    assert fake.raised == {"p.a": 3}
    assert outcome.partitions_raised == ["p.a"]
    assert outcome.configs_updated == []
