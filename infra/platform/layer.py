"""The platform layer: everything Pulumi installs on the cluster, in a safe order.

Bootstrap order (each arrow is an explicit Pulumi dependency):

    Pod Identity roles + associations (EKS)   kube-prometheus-stack (CRDs)     Strimzi/CNPG + CRs
          |            \\                       |        |         \\                  (local)
          |             External Secrets  <-----+     Argo CD     KEDA, metrics-server
          |             + ClusterSecretStore                |
          |                      |                          |
          |              facts channel (apps ns, ConfigMap, ExternalSecret)
          \\______________________|__________________________|
                                 root Application (gitops/<env>) + AppProjects

Pulumi destroys in reverse: the root app goes first (Argo CD, still running, prunes what it
deployed), then the add-ons, and the cluster only after this whole layer (`teardown.py`).

Flavours: the Args are `ManagedLayerArgs` (EKS + MSK + RDS: Pod Identity roles, the Secrets
Manager store) or `InClusterLayerArgs` (a kubeconfig cluster: Strimzi, CloudNativePG, a store on
the CNPG secret). Config validation (`infra.config`) has already refused a mix of the two.

Providers: the Kubernetes provider is an explicit argument (`k8s_provider`) and is set on every
Kubernetes child; the AWS provider for the IAM roles and Pod Identity associations is inherited
from the component's options (`opts=ResourceOptions(providers=[aws_provider])`), like every other
AWS component of the program.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from infra.contracts import DATABASE_NAMESPACE, ENVIRONMENTS, gitops_path
from infra.platform import charts
from infra.platform.argocd import ArgoCd, ArgoCdArgs
from infra.platform.autoscaling import Autoscaling, AutoscalingArgs
from infra.platform.external_secrets import ExternalSecrets, ExternalSecretsArgs
from infra.platform.facts import FactsChannel, FactsChannelArgs
from infra.platform.gitops_bridge import ROOT_APP_NAME, GitOpsBridge, GitOpsBridgeArgs
from infra.platform.identities import WorkloadIdentities, WorkloadIdentitiesArgs
from infra.platform.local_data import DATABASE_READER_SERVICE_ACCOUNT, LocalData, LocalDataArgs
from infra.platform.observability import Observability, ObservabilityArgs
from infra.platform.tracing import Tracing, TracingArgs

LAYER_TYPE = "platform:platform:PlatformLayer"


@dataclass(frozen=True, kw_only=True)
class _LayerArgs:
    """What both flavours of the layer take.

    Attributes:
        environment: the stack (`localstack`, `dev`, `staging`, `prod`).
        region: the AWS region.
        name_prefix: prefix of physical AWS names (`cfg.name_prefix`, e.g. `plat-dev`).
        k8s_provider: the cluster's provider (EKS component's `.provider`, or a kubeconfig one).
        audit_bucket_name: the audit archive bucket (a fact for the audit app).
        gitops_repo_url / gitops_revision: what the root app pulls (`cfg.gitops`).
        high_availability: replicas for every controller (Argo CD HA + redis-ha, 2 Prometheus,
            ...), from `cfg.tier.high_availability`.
        prometheus_retention / prometheus_storage_gib: `cfg.tier.prometheus`.
        tags: base + user tags for the AWS resources.
    """

    environment: str
    region: str
    name_prefix: str
    k8s_provider: pulumi.ProviderResource
    audit_bucket_name: pulumi.Input[str]
    gitops_repo_url: str
    gitops_revision: str
    high_availability: bool
    prometheus_retention: str
    prometheus_storage_gib: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ManagedLayerArgs(_LayerArgs):
    """The `aws` flavour: EKS, MSK with IAM auth, RDS; the apps get Pod Identity roles.

    Attributes:
        cluster_name: the EKS cluster's name (Pod Identity associations are created in it).
        audit_bucket_arn / audit_bucket_kms_key_arn: the archive bucket and its SSE-KMS key
            (None: S3-managed encryption), for the audit app's grants.
        kafka_bootstrap_servers: MSK's IAM bootstrap brokers.
        msk_cluster_arn / msk_cluster_name / msk_cluster_uuid: scope of the apps' MSK grants.
        db_host / db_port / db_name: the RDS endpoint.
        db_secret_arn: the RDS-managed master secret (source of `platform-db`).
        db_secret_kms_key_arn: its CMK (None: the AWS-managed key).
        app_secret_arns / app_secrets_kms_key_arn: the apps' own Secrets Manager secrets (the
            notifier's channels) that External Secrets may read, and their CMK.
    """

    flavour: Literal["aws"] = field(default="aws", init=False)
    cluster_name: pulumi.Input[str]
    audit_bucket_arn: pulumi.Input[str]
    kafka_bootstrap_servers: pulumi.Input[str]
    msk_cluster_arn: pulumi.Input[str]
    msk_cluster_name: pulumi.Input[str]
    msk_cluster_uuid: pulumi.Input[str]
    db_host: pulumi.Input[str]
    db_port: pulumi.Input[int]
    db_name: pulumi.Input[str]
    db_secret_arn: pulumi.Input[str]
    db_secret_kms_key_arn: pulumi.Input[str] | None = None
    audit_bucket_kms_key_arn: pulumi.Input[str] | None = None
    app_secret_arns: Sequence[pulumi.Input[str]] = ()
    app_secrets_kms_key_arn: pulumi.Input[str] | None = None


@dataclass(frozen=True, kw_only=True)
class InClusterLayerArgs(_LayerArgs):
    """The `local` flavour: a kubeconfig cluster with Strimzi Kafka and CloudNativePG inside.

    Attributes:
        database_name: the database CNPG creates (`cfg.database.database_name`).
        postgres_version: CNPG's PostgreSQL image tag (`cfg.database.engine_version`).
        kafka_replicas: Strimzi nodes (`cfg.kafka.broker_count`).
        kafka_replication_factor: topic replication (capped at `kafka_replicas`).
    """

    flavour: Literal["local"] = field(default="local", init=False)
    database_name: str
    postgres_version: str
    kafka_replicas: int
    kafka_replication_factor: int


PlatformLayerArgs = ManagedLayerArgs | InClusterLayerArgs
"""Inputs of the platform layer: one variant per flavour (`cfg.flavour`), told apart by type."""


def validate_args(args: PlatformLayerArgs) -> None:
    """Raise ValueError naming the first bad field, its value and what is allowed."""
    if args.environment not in ENVIRONMENTS:
        raise ValueError(f"environment: {args.environment!r}; allowed: {', '.join(ENVIRONMENTS)}")
    if isinstance(args, InClusterLayerArgs) and args.kafka_replication_factor < 1:
        raise ValueError(
            f"kafka_replication_factor: {args.kafka_replication_factor}; allowed: >= 1"
        )
    if not args.gitops_repo_url or not args.gitops_revision:
        raise ValueError("gitops_repo_url/gitops_revision: empty; allowed: cfg.gitops values")


@dataclass(frozen=True)
class _FlavourParts:
    """What the flavour-specific half of the layer hands to the shared half."""

    secret_store: dict[str, Any]
    """The flavour's `ExternalSecretsArgs` fields: which store, and what it reads from."""
    secrets_wait_for: list[pulumi.Resource]
    """What the ESO release waits for besides the monitoring CRDs (its Pod Identity)."""
    facts: dict[str, Any]
    """The flavour's `FactsChannelArgs` fields: where Kafka and the database are."""
    facts_wait_for: list[pulumi.Resource]
    """What the facts channel waits for besides the secret store (the in-cluster database)."""
    keda_waits_for: list[pulumi.Resource]
    """The KEDA operator's Pod Identity association, where there is one."""
    workloads_wait_for: list[pulumi.Resource]
    """What the root app waits for besides the shared add-ons (identities, or the data CRs)."""


class PlatformLayer(pulumi.ComponentResource):
    """Argo CD, kube-prometheus-stack, tracing, External Secrets, autoscaling, identities, the
    facts channel, the local data services and the root app, wired in bootstrap order."""

    identities: WorkloadIdentities | None
    observability: Observability
    tracing: Tracing
    local_data: LocalData | None
    external_secrets: ExternalSecrets
    autoscaling: Autoscaling
    facts: FactsChannel
    argocd: ArgoCd
    gitops: GitOpsBridge
    root_app_name: str
    gitops_path: str
    otlp_endpoint: str

    def __init__(
        self, name: str, args: PlatformLayerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate_args(args)
        charts.kube_prometheus_stack_values(  # validates retention/storage before any child
            high_availability=args.high_availability,
            retention=args.prometheus_retention,
            storage_gib=args.prometheus_storage_gib,
        )
        super().__init__(LAYER_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        k8s_provider = args.k8s_provider
        ha = args.high_availability

        self.observability = Observability(
            f"{name}-observability",
            ObservabilityArgs(
                k8s_provider=k8s_provider,
                high_availability=ha,
                prometheus_retention=args.prometheus_retention,
                prometheus_storage_gib=args.prometheus_storage_gib,
            ),
            child,
        )
        monitoring_crds: list[pulumi.Resource] = [self.observability.release]
        self.tracing = Tracing(
            f"{name}-tracing", TracingArgs(k8s_provider=k8s_provider, high_availability=ha), child
        )
        if isinstance(args, ManagedLayerArgs):
            flavour = self._managed(name, args, child)
        else:
            flavour = self._in_cluster(name, args, child)
        self.external_secrets = ExternalSecrets(
            f"{name}-external-secrets",
            ExternalSecretsArgs(
                k8s_provider=k8s_provider,
                high_availability=ha,
                region=args.region,
                wait_for=[*monitoring_crds, *flavour.secrets_wait_for],
                **flavour.secret_store,
            ),
            child,
        )
        self.autoscaling = Autoscaling(
            f"{name}-autoscaling",
            AutoscalingArgs(
                k8s_provider=k8s_provider,
                high_availability=ha,
                local_cluster=isinstance(args, InClusterLayerArgs),
                wait_for=[*monitoring_crds, *flavour.keda_waits_for],
            ),
            child,
        )
        self.facts = FactsChannel(
            f"{name}-facts",
            FactsChannelArgs(
                k8s_provider=k8s_provider,
                environment=args.environment,
                region=args.region,
                otlp_endpoint=self.tracing.otlp_endpoint,
                audit_bucket_name=args.audit_bucket_name,
                secret_store_name=self.external_secrets.store_name,
                wait_for=[self.external_secrets.store, *flavour.facts_wait_for],
                **flavour.facts,
            ),
            child,
        )
        self.argocd = ArgoCd(
            f"{name}-argocd",
            ArgoCdArgs(k8s_provider=k8s_provider, high_availability=ha, wait_for=monitoring_crds),
            child,
        )
        self.gitops = GitOpsBridge(
            f"{name}-gitops",
            GitOpsBridgeArgs(
                k8s_provider=k8s_provider,
                environment=args.environment,
                repo_url=args.gitops_repo_url,
                revision=args.gitops_revision,
                argocd_release=self.argocd.release,
                wait_for=[*self._workload_prerequisites(), *flavour.workloads_wait_for],
            ),
            child,
        )
        self.root_app_name = ROOT_APP_NAME
        self.gitops_path = gitops_path(args.environment)
        self.otlp_endpoint = self.tracing.otlp_endpoint
        self.register_outputs(
            {
                "identities": self.identities.urn if self.identities else None,
                "observability": self.observability.urn,
                "tracing": self.tracing.urn,
                "local_data": self.local_data.urn if self.local_data else None,
                "external_secrets": self.external_secrets.urn,
                "autoscaling": self.autoscaling.urn,
                "facts": self.facts.urn,
                "argocd": self.argocd.urn,
                "gitops": self.gitops.urn,
                "root_app_name": self.root_app_name,
                "gitops_path": self.gitops_path,
                "otlp_endpoint": self.otlp_endpoint,
            }
        )

    def _managed(
        self, name: str, args: ManagedLayerArgs, child: pulumi.ResourceOptions
    ) -> _FlavourParts:
        """Pod Identity roles, the Secrets Manager store, and facts pointing at MSK and RDS."""
        identities = WorkloadIdentities(
            f"{name}-identities",
            WorkloadIdentitiesArgs(
                name_prefix=args.name_prefix,
                region=args.region,
                cluster_name=args.cluster_name,
                audit_bucket_arn=args.audit_bucket_arn,
                msk_cluster_arn=args.msk_cluster_arn,
                msk_cluster_name=args.msk_cluster_name,
                msk_cluster_uuid=args.msk_cluster_uuid,
                db_secret_arn=args.db_secret_arn,
                db_secret_kms_key_arn=args.db_secret_kms_key_arn,
                audit_bucket_kms_key_arn=args.audit_bucket_kms_key_arn,
                app_secret_arns=tuple(args.app_secret_arns),
                app_secrets_kms_key_arn=args.app_secrets_kms_key_arn,
                tags=args.tags,
            ),
            child,
        )
        self.identities, self.local_data = identities, None
        eso, keda = identities.external_secrets_association, identities.keda_association
        return _FlavourParts(
            secret_store={"store": "aws-secrets-manager"},
            secrets_wait_for=[eso] if eso else [],
            facts={
                "kafka_bootstrap_servers": args.kafka_bootstrap_servers,
                "kafka_auth_mode": "iam",
                "db_host": args.db_host,
                "db_port": args.db_port,
                "db_name": args.db_name,
                "db_secret_ref": args.db_secret_arn,
            },
            facts_wait_for=[],
            keda_waits_for=[keda] if keda else [],
            workloads_wait_for=list(identities.associations),
        )

    def _in_cluster(
        self, name: str, args: InClusterLayerArgs, child: pulumi.ResourceOptions
    ) -> _FlavourParts:
        """Strimzi and CloudNativePG, a store reading the CNPG secret, and in-cluster facts."""
        local_data = LocalData(
            f"{name}-local-data",
            LocalDataArgs(
                k8s_provider=args.k8s_provider,
                postgres_version=args.postgres_version,
                database_name=args.database_name,
                kafka_replicas=args.kafka_replicas,
                kafka_replication_factor=min(args.kafka_replication_factor, args.kafka_replicas),
            ),
            child,
        )
        self.identities, self.local_data = None, local_data
        return _FlavourParts(
            secret_store={
                "store": "kubernetes",
                "source_namespace": DATABASE_NAMESPACE,
                "reader_service_account": DATABASE_READER_SERVICE_ACCOUNT,
                "store_wait_for": local_data.reader_rbac,
            },
            secrets_wait_for=[],
            facts={
                "kafka_bootstrap_servers": local_data.bootstrap_servers,
                "kafka_auth_mode": "plaintext",
                "db_host": local_data.db_host,
                "db_port": local_data.db_port,
                "db_name": args.database_name,
                "db_secret_ref": local_data.db_secret_name,
            },
            facts_wait_for=[local_data.postgres],
            keda_waits_for=[],
            workloads_wait_for=[local_data.kafka, local_data.postgres],
        )

    def _workload_prerequisites(self) -> list[pulumi.Resource]:
        """What must exist before Argo CD syncs the first workload (and outlive the last one)."""
        needed: list[pulumi.Resource] = [
            self.facts.namespace,
            self.facts.config_map,
            self.facts.db_secret,
            self.observability.release,
            self.tracing.collector,
            self.external_secrets.store,
            self.autoscaling.keda,
            self.autoscaling.metrics_server,
        ]
        return needed
