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

from infra.config import IngressConfig, NodeAutoscalingConfig
from infra.contracts import (
    DATABASE_NAMESPACE,
    ENVIRONMENTS,
    gitops_path,
)
from infra.platform import charts
from infra.platform.argocd import ArgoCd, ArgoCdArgs
from infra.platform.autoscaling import Autoscaling, AutoscalingArgs
from infra.platform.child_args import child_args
from infra.platform.db_credentials import DatabaseCredentials, DatabaseCredentialsArgs
from infra.platform.external_secrets import (
    ExternalSecrets,
    ExternalSecretsArgs,
    alertmanager_receivers_secret_id,
)
from infra.platform.facts import FactsChannel, FactsChannelArgs
from infra.platform.gitops_bridge import ROOT_APP_NAME, GitOpsBridge, GitOpsBridgeArgs
from infra.platform.identities import WorkloadIdentities, WorkloadIdentitiesArgs
from infra.platform.ingress import Ingress, IngressArgs
from infra.platform.local_data import DATABASE_READER_SERVICE_ACCOUNT, LocalData, LocalDataArgs
from infra.platform.log_shipping import (
    LogShipping,
    LogShippingArgs,
    PodLogGroupArgs,
    pod_log_group,
)
from infra.platform.node_autoscaling import NodeAutoscaling, NodeAutoscalingArgs
from infra.platform.observability import Observability, ObservabilityArgs
from infra.platform.storage import Storage, StorageArgs
from infra.platform.tracing import Tracing, TracingArgs
from infra.validation import require_one_of

LAYER_TYPE = "platform:platform:PlatformLayer"
RDS_SSLMODE = "verify-full"
"""The apps verify RDS's certificate and host name (the images ship the RDS CA bundle)."""


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
        alert_receivers: Alertmanager receivers by severity (`observability.alertReceivers`).
        trace_storage_gib: Jaeger's volume (`observability.traceStorageGib`); None: in memory.
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
    alert_receivers: tuple[charts.AlertReceiver, ...] = ()
    trace_storage_gib: int | None = None
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
        cluster_arn: the cluster's ARN (trust conditions of every Pod Identity role).
        kubernetes_version: the cluster's minor (cluster-autoscaler's image follows it).
        vpc_id: the VPC (load balancer controller).
        ebs_kms_key_arn: the EBS key of the default StorageClass.
        logs_kms_key_arn / log_retention_days: the pods' CloudWatch log group.
        ingress: `cfg.ingress` (certificate, scheme, CIDRs, zone).
        node_autoscaling: `cfg.node_autoscaling` (cluster-autoscaler's limits).
        secrets_recovery_window_days: how long the apps' deleted credential secrets stay
            restorable (0 where the stack is torn down and re-created).
        app_secret_arns / app_secrets_kms_key_arn: the Secrets Manager secrets External Secrets
            may read (the notifier's channels, Alertmanager's receivers), and their CMK.
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
    cluster_arn: pulumi.Input[str]
    kubernetes_version: str
    vpc_id: pulumi.Input[str]
    ebs_kms_key_arn: pulumi.Input[str]
    logs_kms_key_arn: pulumi.Input[str]
    ingress: IngressConfig
    node_autoscaling: NodeAutoscalingConfig
    log_retention_days: int
    secrets_recovery_window_days: int = 7
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
    require_one_of("environment", args.environment, ENVIRONMENTS)
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
    storage_class: str | None = None
    """The default StorageClass every platform PVC names (EKS); None: the cluster's default."""
    volumes_wait_for: list[pulumi.Resource] = field(default_factory=list)
    """What releases with volumes wait for (the StorageClass)."""


class PlatformLayer(pulumi.ComponentResource):
    """Argo CD, kube-prometheus-stack, tracing, External Secrets, autoscaling, identities, the
    facts channel, the local data services and the root app, wired in bootstrap order."""

    identities: WorkloadIdentities | None
    db_credentials: DatabaseCredentials | None
    storage: Storage | None
    ingress: Ingress | None
    node_autoscaling: NodeAutoscaling | None
    log_shipping: LogShipping | None
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

        if isinstance(args, ManagedLayerArgs):
            flavour = self._managed(name, args, child)
        else:
            flavour = self._in_cluster(name, args, child)
        volumes = {
            "storage_class": flavour.storage_class,
            "wait_for": flavour.volumes_wait_for,
        }
        self.observability = Observability(
            f"{name}-observability", child_args(ObservabilityArgs, args, **volumes), child
        )
        monitoring_crds: list[pulumi.Resource] = [self.observability.release]
        self.tracing = Tracing(f"{name}-tracing", child_args(TracingArgs, args, **volumes), child)
        self._eks_addons(name, args, child, monitoring_crds)
        self.external_secrets = ExternalSecrets(
            f"{name}-external-secrets",
            child_args(
                ExternalSecretsArgs,
                args,
                wait_for=[*monitoring_crds, *flavour.secrets_wait_for],
                alertmanager_receivers=tuple(r.name for r in args.alert_receivers),
                alertmanager_secret_id=alertmanager_receivers_secret_id(args.name_prefix),
                **flavour.secret_store,
            ),
            child,
        )
        self.autoscaling = Autoscaling(
            f"{name}-autoscaling",
            child_args(
                AutoscalingArgs,
                args,
                local_cluster=isinstance(args, InClusterLayerArgs),
                wait_for=[*monitoring_crds, *flavour.keda_waits_for],
            ),
            child,
        )
        self.facts = FactsChannel(
            f"{name}-facts",
            child_args(
                FactsChannelArgs,
                args,
                otlp_endpoint=self.tracing.otlp_endpoint,
                secret_store_name=self.external_secrets.store_name,
                wait_for=[self.external_secrets.store, *flavour.facts_wait_for],
                **flavour.facts,
            ),
            child,
        )
        self.argocd = ArgoCd(
            f"{name}-argocd",
            child_args(ArgoCdArgs, args, wait_for=monitoring_crds),
            child,
        )
        self.gitops = GitOpsBridge(
            f"{name}-gitops",
            child_args(
                GitOpsBridgeArgs,
                args,
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
                "db_credentials": self.db_credentials.urn if self.db_credentials else None,
                "storage": self.storage.urn if self.storage else None,
                "ingress": self.ingress.urn if self.ingress else None,
                "node_autoscaling": (self.node_autoscaling.urn if self.node_autoscaling else None),
                "log_shipping": self.log_shipping.urn if self.log_shipping else None,
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
        self.storage = Storage(
            f"{name}-storage",
            child_args(StorageArgs, args),
            child,
        )
        log_group = pod_log_group(
            f"{name}-pod-logs",
            PodLogGroupArgs(
                cluster_name=f"{args.name_prefix}-eks",
                retention_days=args.log_retention_days,
                kms_key_arn=args.logs_kms_key_arn,
                tags=args.tags,
            ),
            child,
        )
        self._log_group = log_group
        self.db_credentials = DatabaseCredentials(
            f"{name}-db-credentials",
            child_args(
                DatabaseCredentialsArgs,
                args,
                kms_key_arn=args.db_secret_kms_key_arn,
                recovery_window_days=args.secrets_recovery_window_days,
            ),
            child,
        )
        identities = WorkloadIdentities(
            f"{name}-identities",
            child_args(
                WorkloadIdentitiesArgs,
                args,
                hosted_zone_id=args.ingress.zone_id,
                pod_log_group_arn=log_group.arn,
                db_credentials_secret_arns=self.db_credentials.secret_arns,
                app_secret_arns=tuple(args.app_secret_arns),
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
                "db_sslmode": RDS_SSLMODE,
                "sync_db_secret": False,
            },
            facts_wait_for=[],
            keda_waits_for=[keda] if keda else [],
            workloads_wait_for=list(identities.associations),
            storage_class=self.storage.name,
            volumes_wait_for=[self.storage.storage_class],
        )

    def _in_cluster(
        self, name: str, args: InClusterLayerArgs, child: pulumi.ResourceOptions
    ) -> _FlavourParts:
        """Strimzi and CloudNativePG, a store reading the CNPG secret, and in-cluster facts."""
        local_data = LocalData(
            f"{name}-local-data",
            child_args(
                LocalDataArgs,
                args,
                kafka_replication_factor=min(args.kafka_replication_factor, args.kafka_replicas),
            ),
            child,
        )
        self.identities, self.local_data = None, local_data
        self.storage = None
        self.db_credentials = None
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
                # CloudNativePG serves TLS with its own CA, which the images do not carry.
                "db_sslmode": "require",
            },
            facts_wait_for=[local_data.postgres],
            keda_waits_for=[],
            workloads_wait_for=[local_data.kafka, local_data.postgres],
        )

    def _eks_addons(
        self,
        name: str,
        args: PlatformLayerArgs,
        child: pulumi.ResourceOptions,
        monitoring_crds: list[pulumi.Resource],
    ) -> None:
        """Ingress (ALB controller + external-dns), cluster-autoscaler and Fluent Bit (EKS)."""
        self.ingress = self.node_autoscaling = self.log_shipping = None
        if not isinstance(args, ManagedLayerArgs) or self.identities is None:
            return
        roles = self.identities.controller_associations
        ingress = args.ingress
        assert ingress.certificate_arn and ingress.zone_id  # config requires both with flavour aws
        self.ingress = Ingress(
            f"{name}-ingress",
            child_args(
                IngressArgs,
                args,
                ingress,
                wait_for=[
                    *monitoring_crds,
                    roles["load-balancer-controller"],
                    roles["external-dns"],
                ],
            ),
            child,
        )
        self.node_autoscaling = NodeAutoscaling(
            f"{name}-node-autoscaling",
            child_args(
                NodeAutoscalingArgs,
                args,
                args.node_autoscaling,
                wait_for=[*monitoring_crds, roles["cluster-autoscaler"]],
            ),
            child,
        )
        self.log_shipping = LogShipping(
            f"{name}-log-shipping",
            child_args(
                LogShippingArgs,
                args,
                log_group_name=self._log_group.name,
                wait_for=[*monitoring_crds, roles["fluent-bit"]],
            ),
            child,
        )

    def _workload_prerequisites(self) -> list[pulumi.Resource]:
        """What must exist before Argo CD syncs the first workload (and outlive the last one)."""
        needed: list[pulumi.Resource] = [
            self.facts.namespace,
            self.facts.config_map,
            *([self.facts.db_secret] if self.facts.db_secret else []),
            self.observability.release,
            self.tracing.collector,
            self.external_secrets.store,
            self.autoscaling.keda,
            self.autoscaling.metrics_server,
        ]
        if self.external_secrets.alertmanager_secret is not None:
            needed.append(self.external_secrets.alertmanager_secret)
        if self.ingress is not None:
            # The API's Ingress needs its class and controller; its DNS name needs external-dns.
            # Pulumi destroys in reverse, so the controller outlives the Ingress and its ALB.
            needed += [
                self.ingress.ingress_class,
                self.ingress.controller,
                self.ingress.external_dns,
            ]
        if self.node_autoscaling is not None:
            needed.append(self.node_autoscaling.release)
        if self.log_shipping is not None:
            needed.append(self.log_shipping.release)
        return needed
