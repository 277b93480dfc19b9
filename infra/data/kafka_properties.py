"""Broker `server.properties` for the MSK configuration, as pure functions.

The same settings are asserted by the tests and shown in the docs, so they live here, away from
any Pulumi resource. A production cluster uses replication factor 3 with two in-sync replicas
(one broker may be down without refusing `acks=all` writes); a smaller dev cluster matches its
size so that topic creation does not fail for lack of brokers.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.contracts import SEVEN_DAYS_MS

MAX_REPLICATION_FACTOR = 3


@dataclass(frozen=True)
class Replication:
    """Replication settings of one cluster size."""

    replication_factor: int
    min_insync_replicas: int


def replication_for(broker_count: int) -> Replication:
    """RF 3 / min ISR 2 when there are three brokers or more; otherwise match the cluster size.

    With RF 1 the only replica is also the only in-sync one, so min ISR stays at 1.
    """
    if broker_count < 1:
        raise ValueError(f"broker_count: {broker_count}; allowed: 1 or more")
    factor = min(MAX_REPLICATION_FACTOR, broker_count)
    return Replication(replication_factor=factor, min_insync_replicas=max(1, factor - 1))


def validate_replication(broker_count: int, replication_factor: int, min_insync: int) -> None:
    """Fail naming the field when the replication settings cannot work on `broker_count` brokers."""
    if not 1 <= replication_factor <= broker_count:
        raise ValueError(
            f"replication_factor: {replication_factor}; allowed: 1 to broker_count ({broker_count})"
        )
    upper = replication_factor - 1 if replication_factor > 1 else 1
    if not 1 <= min_insync <= upper:
        raise ValueError(
            f"min_insync_replicas: {min_insync}; allowed: 1 to {upper} (below the replication "
            f"factor {replication_factor}, so one broker can be down without refusing writes)"
        )


def server_properties(
    replication_factor: int,
    min_insync_replicas: int,
    retention_ms: int = SEVEN_DAYS_MS,
) -> dict[str, str]:
    """The broker settings we manage, as ordered key/value pairs.

    Internal topics (consumer offsets, transaction state) get the same replication as user
    topics: Kafka's default of 3 would leave a 2-broker dev cluster unable to create them.
    """
    if retention_ms <= 0:
        raise ValueError(f"retention_ms: {retention_ms}; allowed: a positive number of ms")
    return {
        "auto.create.topics.enable": "false",
        "default.replication.factor": str(replication_factor),
        "min.insync.replicas": str(min_insync_replicas),
        "offsets.topic.replication.factor": str(replication_factor),
        "transaction.state.log.replication.factor": str(replication_factor),
        "transaction.state.log.min.isr": str(min_insync_replicas),
        "unclean.leader.election.enable": "false",
        "log.retention.ms": str(retention_ms),
    }


def render_server_properties(properties: dict[str, str]) -> str:
    """`key=value` lines in the Java properties format MSK expects (one per line, newline-ended)."""
    for key, value in properties.items():
        if not key or any(c in key for c in "=:\n ") or "\n" in value:
            raise ValueError(f"server property {key!r}={value!r} cannot be written as a line")
    return "".join(f"{key}={value}\n" for key, value in properties.items())


def parse_server_properties(text: str) -> dict[str, str]:
    """Inverse of `render_server_properties` (comments and blank lines ignored)."""
    parsed: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise ValueError(f"line {line!r} is not key=value")
        parsed[key.strip()] = value.strip()
    return parsed
