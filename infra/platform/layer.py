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

Providers: the Kubernetes provider is an explicit argument (`k8s_provider`) and is set on every
Kubernetes child; the AWS provider for the IAM roles and Pod Identity associations is inherited
from the component's options (`opts=ResourceOptions(providers=[aws_provider])`), like every other
AWS component of the program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi

from infra.contracts import ENVIRONMENTS, gitops_path
from infra.platform import charts
from infra.platform.argocd import ArgoCd, ArgoCdArgs
from infra.platform.autoscaling import Autoscaling, AutoscalingArgs
from infra.platform.external_secrets import ExternalSecrets, ExternalSecretsArgs
from infra.platform.facts import FactsChannel, FactsChannelArgs
from infra.platform.gitops_bridge import ROOT_APP_NAME, GitOpsBridge, GitOpsBridgeArgs
from infra.platform.identities import WorkloadIdentities, WorkloadIdentitiesArgs
from infra.platform.local_data import LocalData, LocalDataArgs
from infra.platform.observability import Observability, ObservabilityArgs
from infra.platform.tracing import Tracing, TracingArgs

LAYER_TYPE = "platform:platform:PlatformLayer"


@dataclass(frozen=True)
class PlatformLayerArgs:
    """Inputs of the platform layer.

    Attributes:
        environment: the stack (`localstack`, `dev`, `staging`, `prod`).
        region: the AWS region.
        name_prefix: prefix of physical AWS names (`cfg.name_prefix`, e.g. `plat-dev`).
        k8s_provider: the cluster's provider (EKS component's `.provider`, or a kubeconfig one).
        cluster_name: the EKS cluster's name (Pod Identity associations are created in it).
        cluster_mode: `eks`, or `kubeconfig` for the local flavour (no Pod Identity there).
        kafka_mode: `msk` (IAM auth) or `in-cluster` (Strimzi, plaintext).
        database_mode: `rds` or `in-cluster` (CloudNativePG).
        audit_bucket_name / audit_bucket_arn: the audit archive bucket.
        gitops_repo_url / gitops_revision: what the root app pulls (`cfg.gitops`).
        high_availability: prod-grade replica counts (Argo CD HA + redis-ha, 2 Prometheus, ...).
        kafka_replication_factor: topic replication for the in-cluster Kafka.
        kafka_bootstrap_servers: MSK's IAM bootstrap brokers (None in-cluster: computed).
        msk_cluster_arn / msk_cluster_name / msk_cluster_uuid: scope of the apps' MSK grants
            (uuid None: taken from the ARN's last segment).
        db_host / db_port / db_name: RDS endpoint (None in-cluster: the CNPG service).
        db_secret_arn: the RDS-managed master secret (source of `platform-db`).
        db_secret_kms_key_arn: its CMK, when it is not the AWS-managed key.
        audit_bucket_kms_key_arn: the bucket's SSE-KMS key, if any.
        database_name: the database CNPG creates in-cluster (`cfg.database.database_name`).
        postgres_version: CNPG's PostgreSQL image tag (`cfg.database.engine_version`).
        local_kafka_replicas: Strimzi nodes in-cluster (`cfg.kafka.broker_count`).
        prometheus_retention / prometheus_storage_gib: None = `charts.prometheus_sizing(env)`.
        tags: base + user tags for the AWS resources.
    """

    environment: str
    region: str
    name_prefix: str
    k8s_provider: pulumi.ProviderResource
    cluster_name: pulumi.Input[str]
    cluster_mode: Literal["eks", "kubeconfig"]
    kafka_mode: Literal["msk", "in-cluster"]
    database_mode: Literal["rds", "in-cluster"]
    audit_bucket_name: pulumi.Input[str]
    audit_bucket_arn: pulumi.Input[str]
    gitops_repo_url: str
    gitops_revision: str
    high_availability: bool = False
    kafka_replication_factor: int = 3
    kafka_bootstrap_servers: pulumi.Input[str] | None = None
    msk_cluster_arn: pulumi.Input[str] | None = None
    msk_cluster_name: pulumi.Input[str] | None = None
    msk_cluster_uuid: pulumi.Input[str] | None = None
    db_host: pulumi.Input[str] | None = None
    db_port: pulumi.Input[int] | None = None
    db_name: pulumi.Input[str] | None = None
    db_secret_arn: pulumi.Input[str] | None = None
    db_secret_kms_key_arn: pulumi.Input[str] | None = None
    audit_bucket_kms_key_arn: pulumi.Input[str] | None = None
    database_name: str = "platform"
    postgres_version: str = "16.6"
    local_kafka_replicas: int = 1
    prometheus_retention: str | None = None
    prometheus_storage_gib: int | None = None
    tags: dict[str, str] = field(default_factory=dict)


def validate_args(args: PlatformLayerArgs) -> None:
    """Raise ValueError naming the first bad field, its value and what is allowed."""
    if args.environment not in ENVIRONMENTS:
        raise ValueError(f"environment: {args.environment!r}; allowed: {', '.join(ENVIRONMENTS)}")
    for field_name, value, allowed in (
        ("cluster_mode", args.cluster_mode, ("eks", "kubeconfig")),
        ("kafka_mode", args.kafka_mode, ("msk", "in-cluster")),
        ("database_mode", args.database_mode, ("rds", "in-cluster")),
    ):
        if value not in allowed:
            raise ValueError(f"{field_name}: {value!r}; allowed: {', '.join(allowed)}")
    managed = (args.cluster_mode == "eks", args.kafka_mode == "msk", args.database_mode == "rds")
    if len(set(managed)) != 1:
        # MSK IAM auth and the Secrets Manager store both need Pod Identity (EKS only), and the
        # in-cluster data services exist for the kubeconfig flavour; mixing is not supported.
        raise ValueError(
            f"cluster_mode/kafka_mode/database_mode: {args.cluster_mode!r}/{args.kafka_mode!r}/"
            f"{args.database_mode!r}; allowed: eks/msk/rds or kubeconfig/in-cluster/in-cluster"
        )
    if args.kafka_mode == "msk":
        for name in ("kafka_bootstrap_servers", "msk_cluster_arn", "msk_cluster_name"):
            if getattr(args, name) is None:
                raise ValueError(f"{name}: None; allowed: the MSK cluster's value (kafka_mode=msk)")
    if args.database_mode == "rds":
        for name in ("db_host", "db_port", "db_name", "db_secret_arn"):
            if getattr(args, name) is None:
                raise ValueError(f"{name}: None; allowed: the RDS instance's value (rds mode)")
    if args.kafka_replication_factor < 1:
        raise ValueError(
            f"kafka_replication_factor: {args.kafka_replication_factor}; allowed: >= 1"
        )
    if not args.gitops_repo_url or not args.gitops_revision:
        raise ValueError("gitops_repo_url/gitops_revision: empty; allowed: cfg.gitops values")


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
        sizing = charts.prometheus_sizing(args.environment)
        retention = args.prometheus_retention or sizing.retention
        storage_gib = args.prometheus_storage_gib or sizing.storage_gib
        charts.kube_prometheus_stack_values(  # validates retention/storage before any child
            high_availability=args.high_availability, retention=retention, storage_gib=storage_gib
        )
        super().__init__(LAYER_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        k8s_provider = args.k8s_provider
        ha = args.high_availability
        eks = args.cluster_mode == "eks"

        # Pod Identity exists only on EKS; with a kubeconfig cluster nothing could assume a role.
        self.identities = (
            WorkloadIdentities(
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
                    tags=args.tags,
                ),
                child,
            )
            if eks
            else None
        )
        self.observability = Observability(
            f"{name}-observability",
            ObservabilityArgs(
                k8s_provider=k8s_provider,
                high_availability=ha,
                prometheus_retention=retention,
                prometheus_storage_gib=storage_gib,
            ),
            child,
        )
        monitoring_crds: list[pulumi.Resource] = [self.observability.release]
        self.tracing = Tracing(
            f"{name}-tracing", TracingArgs(k8s_provider=k8s_provider, high_availability=ha), child
        )
        self.local_data = (
            None
            if eks
            else LocalData(
                f"{name}-local-data",
                LocalDataArgs(
                    k8s_provider=k8s_provider,
                    postgres_version=args.postgres_version,
                    database_name=args.database_name,
                    kafka_replicas=args.local_kafka_replicas,
                    kafka_replication_factor=min(
                        args.kafka_replication_factor, args.local_kafka_replicas
                    ),
                ),
                child,
            )
        )
        self.external_secrets = self._external_secrets(name, args, monitoring_crds, child)
        keda_identity = (
            [self.identities.keda_association]
            if self.identities and self.identities.keda_association
            else []
        )
        self.autoscaling = Autoscaling(
            f"{name}-autoscaling",
            AutoscalingArgs(
                k8s_provider=k8s_provider,
                high_availability=ha,
                local_cluster=not eks,
                wait_for=[*monitoring_crds, *keda_identity],
            ),
            child,
        )
        self.facts = self._facts(name, args, child)
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
                wait_for=self._workload_prerequisites(),
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

    def _external_secrets(
        self,
        name: str,
        args: PlatformLayerArgs,
        monitoring_crds: list[pulumi.Resource],
        child: pulumi.ResourceOptions,
    ) -> ExternalSecrets:
        if self.identities is not None:
            association = self.identities.external_secrets_association
            return ExternalSecrets(
                f"{name}-external-secrets",
                ExternalSecretsArgs(
                    k8s_provider=args.k8s_provider,
                    high_availability=args.high_availability,
                    store="aws-secrets-manager",
                    region=args.region,
                    wait_for=[*monitoring_crds, *([association] if association else [])],
                ),
                child,
            )
        assert self.local_data is not None  # validate_args: kubeconfig => in-cluster data
        from infra.platform.local_data import DATABASE_READER_SERVICE_ACCOUNT

        return ExternalSecrets(
            f"{name}-external-secrets",
            ExternalSecretsArgs(
                k8s_provider=args.k8s_provider,
                high_availability=args.high_availability,
                store="kubernetes",
                region=args.region,
                source_namespace=charts.DATABASE_NAMESPACE,
                reader_service_account=DATABASE_READER_SERVICE_ACCOUNT,
                wait_for=monitoring_crds,
                store_wait_for=self.local_data.reader_rbac,
            ),
            child,
        )

    def _facts(
        self, name: str, args: PlatformLayerArgs, child: pulumi.ResourceOptions
    ) -> FactsChannel:
        common: dict[str, Any] = {
            "k8s_provider": args.k8s_provider,
            "environment": args.environment,
            "region": args.region,
            "otlp_endpoint": self.tracing.otlp_endpoint,
            "audit_bucket_name": args.audit_bucket_name,
            "secret_store_name": self.external_secrets.store_name,
        }
        if self.local_data is None:
            assert args.kafka_bootstrap_servers is not None  # validate_args (msk)
            assert args.db_host is not None and args.db_port is not None
            assert args.db_name is not None and args.db_secret_arn is not None
            facts_args = FactsChannelArgs(
                **common,
                kafka_bootstrap_servers=args.kafka_bootstrap_servers,
                kafka_auth_mode="iam",
                db_host=args.db_host,
                db_port=args.db_port,
                db_name=args.db_name,
                db_secret_ref=args.db_secret_arn,
                wait_for=[self.external_secrets.store],
            )
        else:
            facts_args = FactsChannelArgs(
                **common,
                kafka_bootstrap_servers=self.local_data.bootstrap_servers,
                kafka_auth_mode="plaintext",
                db_host=self.local_data.db_host,
                db_port=self.local_data.db_port,
                db_name=args.database_name,
                db_secret_ref=self.local_data.db_secret_name,
                wait_for=[self.external_secrets.store, self.local_data.postgres],
            )
        return FactsChannel(f"{name}-facts", facts_args, child)

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
        if self.identities is not None:
            needed.extend(self.identities.associations)
        if self.local_data is not None:
            needed.extend([self.local_data.kafka, self.local_data.postgres])
        return needed
