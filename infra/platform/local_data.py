"""The local flavour's data services, inside the cluster: Kafka through Strimzi (KRaft, one node
pool) and PostgreSQL through CloudNativePG. They replace MSK and RDS on the `localstack` stack,
whose emulator does not offer either.

Topics are not this layer's job, here or on MSK: their one owner is the topics Job that Argo CD
runs before the apps (`python -m apps.topics_job`, spec from `infra.contracts.TOPICS`), so
Strimzi's topic operator is not deployed. Brokers never auto-create topics, as on MSK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.contracts import (
    DATABASE_NAMESPACE,
    KAFKA_NAMESPACE,
    KAFKA_PLAINTEXT_PORT,
    POSTGRES_PORT,
)
from infra.platform import charts
from infra.platform.kube import MANAGED_BY_LABELS, CustomResourceKind, KubeChildren

STRIMZI_API_VERSION = "kafka.strimzi.io/v1beta2"
KAFKA = CustomResourceKind(STRIMZI_API_VERSION, "Kafka")
KAFKA_NODE_POOL = CustomResourceKind(STRIMZI_API_VERSION, "KafkaNodePool")
POSTGRES_CLUSTER = CustomResourceKind("postgresql.cnpg.io/v1", "Cluster")
KAFKA_CLUSTER_NAME = "platform"
KAFKA_VERSION = "3.9.0"  # supported by the pinned Strimzi 0.45 operator
KAFKA_METADATA_VERSION = "3.9-IV0"
PG_CLUSTER_NAME = "platform-pg"
PG_APP_OWNER = "app"
DATABASE_READER_SERVICE_ACCOUNT = "external-secrets-reader"


def kafka_bootstrap_servers() -> str:
    """The plain listener's bootstrap Service that Strimzi creates for the cluster."""
    return (
        f"{KAFKA_CLUSTER_NAME}-kafka-bootstrap.{KAFKA_NAMESPACE}.svc.cluster.local:"
        f"{KAFKA_PLAINTEXT_PORT}"
    )


def postgres_host() -> str:
    """The CNPG read-write Service (always points at the primary)."""
    return f"{PG_CLUSTER_NAME}-rw.{DATABASE_NAMESPACE}.svc.cluster.local"


def postgres_app_secret() -> str:
    """The secret CNPG creates for the application owner (keys username, password, ...)."""
    return f"{PG_CLUSTER_NAME}-app"


def kafka_spec(replication_factor: int) -> dict[str, Any]:
    """The `Kafka` CR spec: KRaft, a plain internal listener, no topic auto-creation."""
    min_isr = max(1, replication_factor - 1)
    return {
        "kafka": {
            "version": KAFKA_VERSION,
            "metadataVersion": KAFKA_METADATA_VERSION,
            "listeners": [
                {"name": "plain", "port": KAFKA_PLAINTEXT_PORT, "type": "internal", "tls": False}
            ],
            "config": {
                "auto.create.topics.enable": False,
                "default.replication.factor": replication_factor,
                "min.insync.replicas": min_isr,
                "offsets.topic.replication.factor": replication_factor,
                "transaction.state.log.replication.factor": replication_factor,
                "transaction.state.log.min.isr": min_isr,
            },
        },
    }


def node_pool_spec(replicas: int, storage_gib: int) -> dict[str, Any]:
    """One pool whose nodes are both KRaft controllers and brokers (enough for a laptop)."""
    return {
        "replicas": replicas,
        "roles": ["controller", "broker"],
        "storage": {
            "type": "jbod",
            "volumes": [
                {
                    "id": 0,
                    "type": "persistent-claim",
                    "size": f"{storage_gib}Gi",
                    # Teardown must not leave volumes behind.
                    "deleteClaim": True,
                    "kraftMetadata": "shared",
                }
            ],
        },
    }


def postgres_cluster_spec(
    *, postgres_version: str, database_name: str, storage_gib: int
) -> dict[str, Any]:
    """The CNPG `Cluster` spec: one instance, the app database owned by `app`."""
    return {
        "instances": 1,
        "imageName": f"ghcr.io/cloudnative-pg/postgresql:{postgres_version}",
        "storage": {"size": f"{storage_gib}Gi"},
        "bootstrap": {"initdb": {"database": database_name, "owner": PG_APP_OWNER}},
    }


@dataclass(frozen=True)
class LocalDataArgs:
    """Inputs of the in-cluster Kafka and PostgreSQL.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        kafka_replicas: Kafka nodes (each controller + broker).
        kafka_replication_factor: the brokers' default replication (<= kafka_replicas); the
            topics Job sets each topic's from the same stack setting.
        kafka_storage_gib: volume per Kafka node.
        postgres_version: PostgreSQL image tag (major.minor, pinned by the stack config).
        database_name: the application database.
        postgres_storage_gib: the PostgreSQL volume.
    """

    k8s_provider: pulumi.ProviderResource
    postgres_version: str
    database_name: str
    kafka_replicas: int = 1
    kafka_replication_factor: int = 1
    kafka_storage_gib: int = 10
    postgres_storage_gib: int = 5


class LocalData(pulumi.ComponentResource):
    """Strimzi + `Kafka`/`KafkaNodePool`, CloudNativePG + `Cluster` (topics: the topics Job)."""

    kafka: k8s.apiextensions.CustomResource
    postgres: k8s.apiextensions.CustomResource
    strimzi: k8s.helm.v3.Release
    cloudnative_pg: k8s.helm.v3.Release
    reader_rbac: list[pulumi.Resource]
    bootstrap_servers: str
    db_host: str
    db_port: int
    db_secret_name: str

    def __init__(
        self, name: str, args: LocalDataArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.kafka_replicas < 1:
            raise ValueError(f"kafka_replicas: {args.kafka_replicas}; allowed: >= 1")
        if not 1 <= args.kafka_replication_factor <= args.kafka_replicas:
            raise ValueError(
                f"kafka_replication_factor: {args.kafka_replication_factor}; allowed: 1 to "
                f"kafka_replicas ({args.kafka_replicas})"
            )
        super().__init__("platform:platform:LocalData", name, None, opts)
        self._kube = KubeChildren(self, args.k8s_provider)
        self._declare_kafka(name, args)
        self._declare_postgres(name, args)
        self.bootstrap_servers = kafka_bootstrap_servers()
        self.db_host = postgres_host()
        self.db_port = POSTGRES_PORT
        self.db_secret_name = postgres_app_secret()
        self.reader_rbac = self._database_reader(name)
        self.register_outputs(
            {
                "kafka": self.kafka.urn,
                "postgres": self.postgres.urn,
                "strimzi": self.strimzi.status,
                "cloudnative_pg": self.cloudnative_pg.status,
                "reader_rbac": [r.urn for r in self.reader_rbac],
                "bootstrap_servers": self.bootstrap_servers,
                "db_host": self.db_host,
                "db_port": self.db_port,
                "db_secret_name": self.db_secret_name,
            }
        )

    def _declare_kafka(self, name: str, args: LocalDataArgs) -> None:
        kube = self._kube
        _, self.strimzi = kube.namespaced_release(
            f"{name}-kafka-namespace", f"{name}-strimzi", charts.STRIMZI, charts.strimzi_values()
        )
        cluster_label = {"strimzi.io/cluster": KAFKA_CLUSTER_NAME}
        pool = kube.custom_resource(
            f"{name}-kafka-node-pool",
            KAFKA_NODE_POOL,
            name="dual-role",
            namespace=KAFKA_NAMESPACE,
            spec=node_pool_spec(args.kafka_replicas, args.kafka_storage_gib),
            labels=cluster_label,
            depends_on=[self.strimzi],
        )
        self.kafka = kube.custom_resource(
            f"{name}-kafka",
            KAFKA,
            name=KAFKA_CLUSTER_NAME,
            namespace=KAFKA_NAMESPACE,
            spec=kafka_spec(args.kafka_replication_factor),
            # Strimzi 0.45 needs both opt-ins for KRaft with node pools.
            annotations={"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"},
            depends_on=[self.strimzi, pool],
        )

    def _declare_postgres(self, name: str, args: LocalDataArgs) -> None:
        kube = self._kube
        _, self.cloudnative_pg = kube.namespaced_release(
            f"{name}-cnpg-namespace",
            f"{name}-cloudnative-pg",
            charts.CLOUDNATIVE_PG,
            charts.cloudnative_pg_values(),
        )
        self._database_ns = kube.namespace(f"{name}-database-namespace", DATABASE_NAMESPACE)
        self.postgres = kube.custom_resource(
            f"{name}-postgres",
            POSTGRES_CLUSTER,
            name=PG_CLUSTER_NAME,
            namespace=DATABASE_NAMESPACE,
            spec=postgres_cluster_spec(
                postgres_version=args.postgres_version,
                database_name=args.database_name,
                storage_gib=args.postgres_storage_gib,
            ),
            depends_on=[self.cloudnative_pg, self._database_ns],
        )

    def _database_reader(self, name: str) -> list[pulumi.Resource]:
        """A ServiceAccount External Secrets uses to read the CNPG app secret, and its RBAC.

        The Role is limited to secrets in the `database` namespace, which only holds this
        database's own secrets.
        """
        ns = DATABASE_NAMESPACE
        metadata = k8s.meta.v1.ObjectMetaArgs(
            name=DATABASE_READER_SERVICE_ACCOUNT, namespace=ns, labels=MANAGED_BY_LABELS
        )
        opts = self._kube.opts([self._database_ns])
        account = k8s.core.v1.ServiceAccount(
            f"{name}-db-reader-account", metadata=metadata, opts=opts
        )
        role = k8s.rbac.v1.Role(
            f"{name}-db-reader-role",
            metadata=metadata,
            rules=[
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[""], resources=["secrets"], verbs=["get", "list", "watch"]
                )
            ],
            opts=opts,
        )
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-db-reader-binding",
            metadata=metadata,
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=role.metadata.name
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(
                    kind="ServiceAccount", name=DATABASE_READER_SERVICE_ACCOUNT, namespace=ns
                )
            ],
            opts=opts,
        )
        return [account, role, binding]
