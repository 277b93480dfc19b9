"""The platform program: composes the components for one typed stack config.

`build(cfg)` is the whole program; `infra/__main__.py` calls it with the stack's config for
`pulumi up`, and `platform_cli.offline.run_stack` calls it under mocks for the tests and
`platform plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws
from pydantic import BaseModel

from infra.cluster.eks import EksCluster, EksClusterArgs
from infra.cluster.kubeconfig import KubeconfigCluster, KubeconfigClusterArgs
from infra.config import PlatformConfig
from infra.contracts import NOTIFIER_CHANNELS_SECRET, notifier_channels_secret_id
from infra.data.database import Database, DatabaseArgs
from infra.data.kafka import KafkaCluster, KafkaClusterArgs
from infra.network.vpc import Network, NetworkArgs
from infra.platform.charts import ALERTMANAGER_RECEIVERS_SECRET, AlertReceiver
from infra.platform.external_secrets import alertmanager_receivers_secret_id
from infra.platform.layer import (
    InClusterLayerArgs,
    ManagedLayerArgs,
    PlatformLayer,
    PlatformLayerArgs,
)
from infra.registry.ecr import Registry, RegistryArgs
from infra.security.app_secrets import AppSecrets, AppSecretsArgs
from infra.security.ci_roles import CiRoles, CiRolesArgs
from infra.security.keys import KEY_PURPOSES, Keys, KeysArgs
from infra.storage.archive_bucket import ArchiveBucket, ArchiveBucketArgs

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Services the `localstack` stack sends to LocalStack. Its free edition serves exactly these;
# EKS, MSK, RDS and ECR are refused there, so that stack replaces them with in-cluster parts.
LOCALSTACK_SERVICES: tuple[str, ...] = (
    "cloudwatch",
    "cloudwatchlogs",
    "ec2",
    "iam",
    "kms",
    "logs",
    "s3",
    "secretsmanager",
    "sts",
)


def aws_provider(cfg: PlatformConfig) -> aws.Provider:
    """The explicit AWS provider every resource uses (LocalStack endpoints in that stack)."""
    if cfg.localstack is None:
        return aws.Provider("aws", region=cfg.region)
    endpoint = cfg.localstack.endpoint
    return aws.Provider(
        "aws",
        region=cfg.region,
        # LocalStack accepts any key pair; these two strings are placeholders, not credentials.
        access_key="test",
        secret_key="test",
        skip_credentials_validation=True,
        skip_metadata_api_check=True,
        skip_requesting_account_id=True,
        skip_region_validation=True,
        s3_use_path_style=True,  # no wildcard DNS for bucket subdomains on 127.0.0.1
        endpoints=[aws.ProviderEndpointArgs(**dict.fromkeys(LOCALSTACK_SERVICES, endpoint))],
    )


@dataclass(frozen=True)
class _Foundation:
    """What both flavours build on: the AWS provider, keys, network and archive bucket."""

    cfg: PlatformConfig
    with_aws: pulumi.ResourceOptions
    tags: dict[str, str]
    keys: Keys
    network: Network
    archive: ArchiveBucket

    @property
    def cluster_name(self) -> str:
        return f"{self.cfg.name_prefix}-eks"

    def stack_fields(self) -> dict[str, Any]:
        """The stack's identity (name prefix, stack, region, tags) for the Args that take it."""
        cfg = self.cfg
        return {
            "name_prefix": cfg.name_prefix,
            "environment": cfg.stack,
            "region": cfg.region,
            "tags": self.tags,
        }

    def layer_fields(self, k8s_provider: pulumi.ProviderResource) -> dict[str, Any]:
        """The platform layer's Args that do not depend on the flavour."""
        cfg = self.cfg
        return {
            **self.stack_fields(),
            "k8s_provider": k8s_provider,
            "audit_bucket_name": self.archive.bucket_name,
            "gitops_repo_url": cfg.gitops.repo_url,
            "gitops_revision": cfg.gitops.target_revision,
            "high_availability": cfg.tier.high_availability,
            "prometheus_retention": cfg.tier.prometheus.retention,
            "prometheus_storage_gib": cfg.tier.prometheus.storage_gib,
            "alert_receivers": tuple(
                AlertReceiver(r.name, r.kind, tuple(r.severities), r.slack_channel)
                for r in cfg.observability.alert_receivers
            ),
            "trace_storage_gib": cfg.observability.trace_storage_gib,
        }


def build(cfg: PlatformConfig) -> dict[str, Any]:
    """Declare every resource of one environment and export what later layers need."""
    provider = aws_provider(cfg)
    with_aws = pulumi.ResourceOptions(providers=[provider])
    tags = {**cfg.base_tags, **cfg.tags}
    prefix = cfg.name_prefix

    keys = Keys(
        "keys",
        KeysArgs(
            name_prefix=prefix,
            purposes=key_purposes(cfg),
            deletion_window_days=cfg.protection.key_deletion_window_days,
            protect=cfg.protection.protect_resources,
            tags=tags,
        ),
        opts=with_aws,
    )

    az_names = cfg.availability_zones
    network = Network(
        "network",
        NetworkArgs(
            name_prefix=prefix,
            region=cfg.region,
            vpc_cidr=cfg.network.vpc_cidr,
            availability_zones=az_names,
            nat_gateways=cfg.network.nat_gateways,
            flow_logs_retention_days=cfg.network.flow_logs_retention_days,
            logs_kms_key_arn=keys.arns["logs"],
            eks_cluster_name=f"{prefix}-eks" if cfg.flavour == "aws" else None,
            tags=tags,
        ),
        opts=with_aws,
    )

    archive = ArchiveBucket(
        "audit-archive",
        ArchiveBucketArgs(
            bucket_name=f"{prefix}-audit-archive",
            kms_key_arn=keys.arns["s3"],
            protect=cfg.protection.protect_resources,
            # Config keeps `protectResources` on in prod, so prod never force-destroys.
            force_destroy=not cfg.protection.protect_resources,
            tags=tags,
        ),
        opts=with_aws,
    )

    outputs: dict[str, Any] = {
        "region": cfg.region,
        "vpcId": network.vpc_id,
        "privateSubnetIds": network.private_subnet_ids,
        "isolatedSubnetIds": network.isolated_subnet_ids,
        "availabilityZones": az_names,
        "auditArchiveBucket": archive.bucket_name,
        "kmsKeyArns": keys.arns,
    }

    base = _Foundation(cfg, with_aws, tags, keys, network, archive)
    # Config has checked that the cluster, Kafka and database modes follow the flavour.
    layer_args: PlatformLayerArgs
    if cfg.flavour == "aws":
        layer_args = _managed_services(base, outputs)
    else:
        layer_args = _kubeconfig_cluster(base, outputs)

    if cfg.registry.create:
        registry = Registry(
            "registry",
            RegistryArgs(
                kms_key_arn=keys.arns["ecr"],
                repository_prefix=cfg.registry.repository_prefix,
                protect=cfg.registry.protect,
                tags=tags,
            ),
            opts=with_aws,
        )
        outputs["ecrRepositoryUrls"] = registry.repository_urls

    # The cluster platform layer: ArgoCD (+ root app on gitops/<env>), observability, External
    # Secrets, KEDA, per-app identities and the facts channel. AWS children (IAM, Pod Identity)
    # use the AWS provider; Kubernetes children use the cluster's provider.
    platform = PlatformLayer("platform", layer_args, opts=with_aws)
    outputs["rootApplication"] = platform.root_app_name

    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def _managed_services(base: _Foundation, outputs: dict[str, Any]) -> ManagedLayerArgs:
    """Flavour `aws`: EKS, MSK and RDS, and the platform layer's Args that point at them."""
    cfg, keys, network, tags, with_aws = base.cfg, base.keys, base.network, base.tags, base.with_aws
    prefix = cfg.name_prefix
    protect = cfg.protection.protect_resources
    assert cfg.node_autoscaling is not None  # config requires it with flavour aws
    eks = EksCluster(
        "cluster",
        EksClusterArgs(
            **section_fields(cfg.cluster, EksClusterArgs),
            cluster_name=base.cluster_name,
            vpc_id=network.vpc_id,
            private_subnet_ids=pulumi.Output.all(*network.private_subnet_ids),
            secrets_kms_key_arn=keys.arns["eks"],
            ebs_kms_key_arn=keys.arns["ebs"],
            logs_kms_key_arn=keys.arns["logs"],
            tags=tags,
            protect=protect,
        ),
        opts=with_aws,
    )
    node_sg = [eks.node_security_group_id]

    kafka = KafkaCluster(
        "kafka",
        KafkaClusterArgs(
            **section_fields(cfg.kafka, KafkaClusterArgs),
            cluster_name=f"{prefix}-kafka",
            kafka_version=cfg.kafka.version,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            client_security_group_ids=node_sg,
            kms_key_arn=keys.arns["msk"],
            logs_kms_key_arn=keys.arns["logs"],
            tags=tags,
            protect=protect,
        ),
        opts=with_aws,
    )

    database = Database(
        "database",
        DatabaseArgs(
            **section_fields(cfg.database, DatabaseArgs),
            identifier=f"{prefix}-postgres",
            vpc_id=network.vpc_id,
            subnet_ids=network.isolated_subnet_ids,
            client_security_group_ids=node_sg,
            kms_key_arn=keys.arns["rds"],
            deletion_protection=cfg.protection.deletion_protection,
            final_snapshot=cfg.protection.final_snapshot,
            protect=protect,
            tags=tags,
        ),
        opts=with_aws,
    )
    # The CI's read-only preview role (trusted PR previews, the drift job); the local flavour
    # has no cloud for CI to preview against.
    ci = CiRoles(
        "ci", CiRolesArgs(**base.stack_fields(), cluster_name=eks.cluster_name), opts=with_aws
    )
    outputs |= {
        "ciPreviewRoleArn": ci.preview_role_arn,
        "clusterName": eks.cluster_name,
        "clusterArn": eks.cluster_arn,
        "clusterEndpoint": eks.endpoint,
        "oidcIssuerUrl": eks.oidc_issuer_url,
        "kubeconfig": eks.kubeconfig,
        "kafkaClusterArn": kafka.cluster_arn,
        "kafkaBootstrapBrokersIam": kafka.bootstrap_brokers_iam,
        "dbAddress": database.address,
        "dbPort": database.port,
        "dbName": database.db_name,
        "dbSecretArn": database.master_secret_arn,
    }
    app_secrets = AppSecrets(
        "app-secrets",
        AppSecretsArgs(
            # The notifier's channels and, where receivers are configured, Alertmanager's
            # receiver credentials: External Secrets syncs both by exact ARN.
            secrets={
                NOTIFIER_CHANNELS_SECRET: notifier_channels_secret_id(prefix),
                **(
                    {ALERTMANAGER_RECEIVERS_SECRET: alertmanager_receivers_secret_id(prefix)}
                    if cfg.observability.alert_receivers
                    else {}
                ),
            },
            kms_key_arn=keys.arns["secrets"],
            protect=protect,
            tags=tags,
        ),
        opts=with_aws,
    )
    return ManagedLayerArgs(
        **base.layer_fields(eks.provider),
        app_secret_arns=list(app_secrets.arns.values()),
        app_secrets_kms_key_arn=keys.arns["secrets"],
        cluster_name=eks.cluster_name,
        audit_bucket_arn=base.archive.bucket_arn,
        audit_bucket_kms_key_arn=keys.arns["s3"],
        kafka_bootstrap_servers=kafka.bootstrap_brokers_iam,
        msk_cluster_arn=kafka.cluster_arn,
        msk_cluster_name=kafka.cluster_name,
        msk_cluster_uuid=kafka.cluster_uuid,
        db_host=database.address,
        db_port=database.port,
        db_name=database.db_name,
        db_secret_arn=database.master_secret_arn,
        db_secret_kms_key_arn=keys.arns["rds"],
        cluster_arn=eks.cluster_arn,
        kubernetes_version=cfg.cluster.version,
        vpc_id=network.vpc_id,
        ebs_kms_key_arn=keys.arns["ebs"],
        logs_kms_key_arn=keys.arns["logs"],
        ingress=cfg.ingress,
        node_autoscaling=cfg.node_autoscaling,
        log_retention_days=cfg.observability.log_retention_days,
        secrets_recovery_window_days=30 if protect else 0,
    )


def _kubeconfig_cluster(base: _Foundation, outputs: dict[str, Any]) -> InClusterLayerArgs:
    """Flavour `local`: an existing cluster; Kafka and PostgreSQL run inside it (the layer)."""
    cfg = base.cfg
    cluster = KubeconfigCluster(
        "cluster",
        KubeconfigClusterArgs(
            context=cfg.cluster.kubeconfig_context or "", cluster_name=base.cluster_name
        ),
    )
    outputs["clusterName"] = cluster.cluster_name
    return InClusterLayerArgs(
        **base.layer_fields(cluster.provider),
        database_name=cfg.database.database_name,
        postgres_version=cfg.database.engine_version,
        kafka_replicas=cfg.kafka.broker_count,
        kafka_replication_factor=cfg.kafka.replication_factor,
    )


def section_fields(section: BaseModel, args_type: type[DataclassInstance]) -> dict[str, Any]:
    """The fields of the Args dataclass `args_type` that the config section holds under the same
    name (a field or a derived property such as `replication_factor`).

    The component owns those settings, so they are mapped by name once here instead of one by
    one; what only the program knows (names, wiring, keys) is passed beside them.
    """
    model = type(section)

    def held(name: str) -> bool:
        return name in model.model_fields or isinstance(getattr(model, name, None), property)

    return {f.name: getattr(section, f.name) for f in fields(args_type) if held(f.name)}


def key_purposes(cfg: PlatformConfig) -> tuple[str, ...]:
    """Only the customer keys something in this stack encrypts with (an unused key still costs)."""
    used = {
        "s3": True,
        "logs": True,
        "eks": cfg.cluster.mode == "eks",
        "ebs": cfg.cluster.mode == "eks",
        "msk": cfg.kafka.mode == "msk",
        "rds": cfg.database.mode == "rds",
        "ecr": cfg.registry.create,
        # The apps' own Secrets Manager secrets (the notifier's channels); the local flavour
        # keeps them as Kubernetes Secrets.
        "secrets": cfg.flavour == "aws",
    }
    return tuple(purpose for purpose in KEY_PURPOSES if used[purpose])
