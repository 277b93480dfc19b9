"""Least-privilege IAM documents for the workloads on the cluster (pure functions, no Pulumi).

Each bundled app gets its own role, assumed through EKS Pod Identity, with exactly what its
contract (`infra.contracts.AppContract`) needs:

- MSK IAM: `kafka-cluster:Connect`/`DescribeCluster` on this cluster's ARN; read or write on the
  ARNs of its own topics only; its own consumer group only. Actions are listed one by one: no
  `kafka-cluster:*`, no `*` resource.
- Secrets Manager: read of the app's OWN database credentials only (plus `kms:Decrypt` through
  Secrets Manager when they are encrypted with a customer key); never the master secret.
- S3: the audit archive bucket only, for the audit app only.

Platform workloads get roles too: External Secrets (reads the secrets it syncs: the notifier's
channels, Alertmanager's receivers), the KEDA operator (reads consumer-group lag for scaling) and
the db-roles Job (the only reader of the master secret; writes the apps' credentials).

MSK ARN shapes (AWS "IAM access control for Amazon MSK"):
    cluster  arn:aws:kafka:<region>:<account>:cluster/<cluster-name>/<cluster-uuid>
    topic    arn:aws:kafka:<region>:<account>:topic/<cluster-name>/<cluster-uuid>/<topic>
    group    arn:aws:kafka:<region>:<account>:group/<cluster-name>/<cluster-uuid>/<group>
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from infra.cluster.iam import POLICY_VERSION
from infra.contracts import AppContract

_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):")
_ACCOUNT = re.compile(r"^\d{12}$")

# Actions, grouped by the resource they apply to.
KAFKA_CLUSTER_ACTIONS = ("kafka-cluster:Connect", "kafka-cluster:DescribeCluster")
# Idempotent producers (acks=all + enable.idempotence) need this cluster-level action to obtain a
# producer id; every app that writes (the producer, and consumers writing dead letters) gets it.
KAFKA_IDEMPOTENT_WRITE_ACTIONS = ("kafka-cluster:WriteDataIdempotently",)
KAFKA_TOPIC_READ_ACTIONS = ("kafka-cluster:DescribeTopic", "kafka-cluster:ReadData")
KAFKA_TOPIC_WRITE_ACTIONS = ("kafka-cluster:DescribeTopic", "kafka-cluster:WriteData")
KAFKA_GROUP_ACTIONS = ("kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup")
KAFKA_LAG_READER_TOPIC_ACTIONS = ("kafka-cluster:DescribeTopic",)
# The PreSync topics Job creates topics, raises partitions and aligns retention.
KAFKA_TOPIC_ADMIN_ACTIONS = (
    "kafka-cluster:CreateTopic",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:AlterTopic",
    "kafka-cluster:DescribeTopicDynamicConfiguration",
    "kafka-cluster:AlterTopicDynamicConfiguration",
)
KAFKA_LAG_READER_GROUP_ACTIONS = ("kafka-cluster:DescribeGroup",)
SECRET_READ_ACTIONS = ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")
SECRET_WRITE_ACTIONS = ("secretsmanager:PutSecretValue",)
SECRET_KMS_WRITE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
KMS_DECRYPT_ACTIONS = ("kms:Decrypt",)
ARCHIVE_OBJECT_ACTIONS = ("s3:PutObject", "s3:GetObject")
ARCHIVE_BUCKET_ACTIONS = ("s3:ListBucket",)
ARCHIVE_KMS_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


@dataclass(frozen=True)
class MskArns:
    """ARN builder for one MSK cluster (values known only after the cluster exists)."""

    partition: str
    region: str
    account: str
    cluster_name: str
    cluster_uuid: str

    @classmethod
    def from_cluster(cls, cluster_arn: str, cluster_name: str, cluster_uuid: str) -> MskArns:
        """Derive partition/region/account from the cluster ARN; name and uuid are explicit."""
        match = _ARN.match(cluster_arn)
        parts = cluster_arn.split(":")
        if not match or len(parts) < 6 or not _ACCOUNT.match(parts[4]):
            raise ValueError(
                f"msk cluster arn {cluster_arn!r} is not an ARN; allowed: "
                "arn:<partition>:kafka:<region>:<account>:cluster/<name>/<uuid>"
            )
        for label, value in (("cluster_name", cluster_name), ("cluster_uuid", cluster_uuid)):
            if not value or "/" in value or "*" in value:
                raise ValueError(f"msk {label} {value!r}; allowed: a non-empty name without / or *")
        return cls(
            partition=match["partition"],
            region=match["region"],
            account=parts[4],
            cluster_name=cluster_name,
            cluster_uuid=cluster_uuid,
        )

    def _arn(self, kind: str, suffix: str = "") -> str:
        base = (
            f"arn:{self.partition}:kafka:{self.region}:{self.account}:"
            f"{kind}/{self.cluster_name}/{self.cluster_uuid}"
        )
        return f"{base}/{suffix}" if suffix else base

    @property
    def cluster(self) -> str:
        return self._arn("cluster")

    def topic(self, name: str) -> str:
        _check_kafka_name(name, "topic")
        return self._arn("topic", name)

    def group(self, name: str) -> str:
        _check_kafka_name(name, "consumer group")
        return self._arn("group", name)


_CLUSTER_PATH = re.compile(r":cluster/(?P<name>[^/]+)/(?P<uuid>[^/]+)$")


def cluster_uuid_from_arn(cluster_arn: str) -> str:
    """The UUID at the end of a real MSK cluster ARN (`...:cluster/<name>/<uuid>`).

    Raises instead of guessing: a wrong UUID would silently grant nothing (or the wrong cluster).
    """
    match = _CLUSTER_PATH.search(cluster_arn)
    if not match:
        raise ValueError(
            f"msk_cluster_uuid: None and the cluster ARN {cluster_arn!r} has no "
            "cluster/<name>/<uuid> path; allowed: pass the MSK cluster's `cluster_uuid` output"
        )
    return match["uuid"]


def _check_kafka_name(name: str, what: str) -> None:
    # A wildcard in a topic/group name would widen the grant beyond the contract.
    if not name or "*" in name or "?" in name or "/" in name:
        raise ValueError(f"{what} {name!r}; allowed: a literal name without * ? or /")


def _statement(sid: str, actions: tuple[str, ...], resources: list[str]) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)),
    }


def _kms_via(
    sid: str, actions: tuple[str, ...], key_arn: str, service: str, region: str
) -> dict[str, Any]:
    statement = _statement(sid, actions, [key_arn])
    # The key may only be used on behalf of the named service, not directly.
    statement["Condition"] = {
        "StringEquals": {"kms:ViaService": f"{service}.{region}.amazonaws.com"}
    }
    return statement


def _secret_statements(
    secret_arn: str | None,
    secret_kms_key_arn: str | None,
    region: str,
    sid: str = "ReadDatabaseSecret",
) -> list[dict[str, Any]]:
    if not secret_arn:
        return []
    statements = [_statement(sid, SECRET_READ_ACTIONS, [secret_arn])]
    if secret_kms_key_arn:
        statements.append(
            _kms_via(
                "DecryptDatabaseSecret",
                KMS_DECRYPT_ACTIONS,
                secret_kms_key_arn,
                "secretsmanager",
                region,
            )
        )
    return statements


def app_policy(
    app: AppContract,
    *,
    msk: MskArns | None,
    region: str,
    db_credentials_secret_arn: str | None = None,
    db_secret_kms_key_arn: str | None = None,
    archive_bucket_arn: str | None = None,
    archive_kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """The permission policy of one app's role, derived from its contract.

    `msk` is None when Kafka is not MSK (nothing Kafka-related is granted then);
    `db_credentials_secret_arn` (the app's own login, see `db_roles_policy`) is None when the
    database is not RDS. Raises ValueError when the contract asks for the archive
    bucket but no bucket ARN is given, so a wiring mistake cannot silently drop a permission.
    """
    statements: list[dict[str, Any]] = []
    if msk is not None:
        writes = tuple(
            sorted({*app.produces, *((app.dead_letter_topic,) if app.dead_letter_topic else ())})
        )
        cluster_actions = KAFKA_CLUSTER_ACTIONS + (KAFKA_IDEMPOTENT_WRITE_ACTIONS if writes else ())
        statements.append(_statement("KafkaCluster", cluster_actions, [msk.cluster]))
        if app.consumes:
            statements.append(
                _statement(
                    "KafkaReadOwnTopics",
                    KAFKA_TOPIC_READ_ACTIONS,
                    [msk.topic(t) for t in app.consumes],
                )
            )
        if writes:
            statements.append(
                _statement(
                    "KafkaWriteOwnTopics", KAFKA_TOPIC_WRITE_ACTIONS, [msk.topic(t) for t in writes]
                )
            )
        if app.consumer_group:
            statements.append(
                _statement("KafkaOwnGroup", KAFKA_GROUP_ACTIONS, [msk.group(app.consumer_group)])
            )
    if app.uses_database:
        # The app's OWN credentials (written by the db-roles Job), never the master secret.
        statements.extend(
            _secret_statements(
                db_credentials_secret_arn, db_secret_kms_key_arn, region, "ReadOwnDbCredentials"
            )
        )
    if app.uses_archive_bucket:
        if not archive_bucket_arn:
            raise ValueError(
                f"app {app.name!r} uses the archive bucket but no bucket ARN was given"
            )
        statements.append(
            _statement("ArchiveObjects", ARCHIVE_OBJECT_ACTIONS, [f"{archive_bucket_arn}/*"])
        )
        statements.append(_statement("ArchiveList", ARCHIVE_BUCKET_ACTIONS, [archive_bucket_arn]))
        if archive_kms_key_arn:
            statements.append(
                _kms_via("ArchiveKms", ARCHIVE_KMS_ACTIONS, archive_kms_key_arn, "s3", region)
            )
    if not statements:
        # IAM rejects an empty Statement list; a deny-nothing placeholder would be noise. The
        # caller skips the inline policy for such an app instead.
        return {"Version": POLICY_VERSION, "Statement": []}
    return {"Version": POLICY_VERSION, "Statement": statements}


def external_secrets_policy(
    *,
    region: str,
    app_secret_arns: tuple[str, ...],
    app_secrets_kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """External Secrets' role: read the secrets it syncs (the notifier's channels, Alertmanager's
    receivers) by exact ARN. On AWS it copies no database credential: each app reads its own
    login, and only the db-roles Job reads the master secret (`db_roles_policy`)."""
    if not app_secret_arns:
        raise ValueError("app_secret_arns is empty; External Secrets needs the secrets it syncs")
    statements = [_statement("ReadAppSecrets", SECRET_READ_ACTIONS, sorted(app_secret_arns))]
    if app_secrets_kms_key_arn:
        statements.append(
            _kms_via(
                "DecryptAppSecrets",
                KMS_DECRYPT_ACTIONS,
                app_secrets_kms_key_arn,
                "secretsmanager",
                region,
            )
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


def db_roles_policy(
    *,
    master_secret_arn: str,
    credentials_secret_arns: list[str],
    region: str,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """The db-roles Job's role: read the master secret, read and write the apps' credentials.

    The only role that can read the master secret (RDS rotates it; the Job reads it each run).
    """
    if not master_secret_arn or not credentials_secret_arns:
        raise ValueError("master_secret_arn/credentials_secret_arns: empty; the Job needs both")
    statements = [
        _statement("ReadMasterSecret", SECRET_READ_ACTIONS, [master_secret_arn]),
        _statement(
            "PublishAppCredentials",
            SECRET_READ_ACTIONS + SECRET_WRITE_ACTIONS,
            credentials_secret_arns,
        ),
    ]
    if kms_key_arn:
        statements.append(
            _kms_via("SecretsKey", SECRET_KMS_WRITE_ACTIONS, kms_key_arn, "secretsmanager", region)
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


def keda_lag_reader_policy(apps: tuple[AppContract, ...], *, msk: MskArns) -> dict[str, Any]:
    """KEDA operator's role: describe the consumers' topics and groups to compute lag."""
    consumers = [app for app in apps if app.consumer_group]
    topics = sorted({t for app in consumers for t in app.consumes})
    groups = sorted({app.consumer_group for app in consumers if app.consumer_group})
    statements = [_statement("KafkaCluster", KAFKA_CLUSTER_ACTIONS, [msk.cluster])]
    described = (
        ("DescribeConsumedTopics", KAFKA_LAG_READER_TOPIC_ACTIONS, [msk.topic(t) for t in topics]),
        ("DescribeConsumerGroups", KAFKA_LAG_READER_GROUP_ACTIONS, [msk.group(g) for g in groups]),
    )
    # An empty Resource list is invalid IAM: a statement appears only when it names something.
    statements += [_statement(sid, actions, arns) for sid, actions, arns in described if arns]
    return {"Version": POLICY_VERSION, "Statement": statements}


def topics_admin_policy(topics: tuple[str, ...], *, msk: MskArns) -> dict[str, Any]:
    """The topics Job's role: manage exactly the contract's topics, nothing else."""
    if not topics:
        raise ValueError("topics is empty; the topics Job needs the contract's topic names")
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            _statement("KafkaCluster", KAFKA_CLUSTER_ACTIONS, [msk.cluster]),
            _statement(
                "ManageContractTopics",
                KAFKA_TOPIC_ADMIN_ACTIONS,
                [msk.topic(t) for t in sorted(topics)],
            ),
        ],
    }


def _statement_values(policy: dict[str, Any], key: str) -> list[str]:
    """Every value of `key` over the statements (IAM allows a string or a list there)."""
    found: list[str] = []
    for statement in policy.get("Statement", []):
        value = statement.get(key, [])
        found.extend([value] if isinstance(value, str) else value)
    return found


def actions_of(policy: dict[str, Any]) -> list[str]:
    """Every action of a policy (for checks: no `*`, no service-wide wildcard)."""
    return _statement_values(policy, "Action")


def resources_of(policy: dict[str, Any]) -> list[str]:
    """Every resource ARN of a policy."""
    return _statement_values(policy, "Resource")


def has_wildcard_action(policy: dict[str, Any]) -> bool:
    """True when any action is `*` or ends in `*` (e.g. `kafka-cluster:*`, `s3:Get*`)."""
    return any(a == "*" or a.endswith("*") for a in actions_of(policy))
