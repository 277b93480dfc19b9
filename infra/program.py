"""The platform program: composes the components for one typed stack config.

`build(cfg)` is the whole program; `infra/__main__.py` calls it with the stack's config for
`pulumi up`, and `infra.offline.run_stack` calls it under mocks for the tests and `platform plan`.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from infra.cluster.eks import EksCluster, EksClusterArgs
from infra.cluster.kubeconfig import KubeconfigCluster, KubeconfigClusterArgs
from infra.config import PlatformConfig
from infra.data.database import Database, DatabaseArgs
from infra.data.kafka import KafkaCluster, KafkaClusterArgs
from infra.network.vpc import Network, NetworkArgs
from infra.platform.layer import PlatformLayer, PlatformLayerArgs
from infra.registry.ecr import Registry, RegistryArgs
from infra.security.ci_roles import CiRoles, CiRolesArgs
from infra.security.keys import KEY_PURPOSES, Keys, KeysArgs
from infra.storage.archive_bucket import ArchiveBucket, ArchiveBucketArgs

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


def build(cfg: PlatformConfig) -> dict[str, Any]:
    """Declare every resource of one environment and export what later layers need."""
    provider = aws_provider(cfg)
    with_aws = pulumi.ResourceOptions(providers=[provider])
    tags = {**cfg.base_tags, **cfg.tags}
    prefix = cfg.name_prefix
    cluster_name = f"{prefix}-eks"

    keys = Keys(
        "keys",
        KeysArgs(
            name_prefix=prefix,
            purposes=key_purposes(cfg),
            deletion_window_days=30 if cfg.is_prod else 7,
            protect=cfg.protection.protect_resources,
            tags=tags,
        ),
        opts=with_aws,
    )

    az_names = _static_azs(cfg)
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
            eks_cluster_name=cluster_name if cfg.cluster.mode == "eks" else None,
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
            force_destroy=not cfg.protection.protect_resources and not cfg.is_prod,
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

    protect = cfg.protection.protect_resources
    if cfg.cluster.mode == "eks":
        eks = EksCluster(
            "cluster",
            EksClusterArgs(
                cluster_name=cluster_name,
                version=cfg.cluster.version,
                addon_versions=cfg.cluster.addon_versions,
                node_groups=cfg.cluster.node_groups,
                vpc_id=network.vpc_id,
                private_subnet_ids=pulumi.Output.all(*network.private_subnet_ids),
                secrets_kms_key_arn=keys.arns["eks"],
                ebs_kms_key_arn=keys.arns["ebs"],
                public_access_cidrs=cfg.cluster.public_access_cidrs,
                admin_role_arns=cfg.cluster.admin_role_arns,
                grant_deployer_admin=cfg.cluster.grant_deployer_admin,
                log_retention_days=cfg.cluster.log_retention_days,
                logs_kms_key_arn=keys.arns["logs"],
                tags=tags,
                protect=protect,
            ),
            opts=with_aws,
        )
        node_sg = [eks.node_security_group_id]
        k8s_provider, k8s_cluster_name = eks.provider, eks.cluster_name
        outputs |= {
            "clusterName": eks.cluster_name,
            "clusterArn": eks.cluster_arn,
            "clusterEndpoint": eks.endpoint,
            "oidcIssuerUrl": eks.oidc_issuer_url,
            "kubeconfig": eks.kubeconfig,
        }
    else:
        local_cluster = KubeconfigCluster(
            "cluster",
            KubeconfigClusterArgs(
                context=cfg.cluster.kubeconfig_context or "", cluster_name=cluster_name
            ),
        )
        node_sg = []
        k8s_provider, k8s_cluster_name = local_cluster.provider, local_cluster.cluster_name
        outputs["clusterName"] = local_cluster.cluster_name

    # The CI's read-only preview role (trusted PR previews, the drift job). Not for the
    # localstack stack: nothing in CI previews it against a cloud.
    if not cfg.is_localstack:
        ci = CiRoles(
            "ci",
            CiRolesArgs(
                name_prefix=prefix,
                environment=cfg.stack,
                region=cfg.region,
                cluster_name=k8s_cluster_name if cfg.cluster.mode == "eks" else None,
                tags=tags,
            ),
            opts=with_aws,
        )
        outputs["ciPreviewRoleArn"] = ci.preview_role_arn

    kafka: KafkaCluster | None = None
    if cfg.kafka.mode == "msk":
        kafka = KafkaCluster(
            "kafka",
            KafkaClusterArgs(
                cluster_name=f"{prefix}-kafka",
                kafka_version=cfg.kafka.version,
                broker_count=cfg.kafka.broker_count,
                instance_type=cfg.kafka.instance_type,
                storage_gib=cfg.kafka.storage_gib,
                max_storage_gib=cfg.kafka.max_storage_gib,
                replication_factor=cfg.kafka.replication_factor,
                min_insync_replicas=cfg.kafka.min_insync_replicas,
                vpc_id=network.vpc_id,
                subnet_ids=network.private_subnet_ids,
                client_security_group_ids=node_sg,
                kms_key_arn=keys.arns["msk"],
                log_retention_days=cfg.kafka.log_retention_days,
                logs_kms_key_arn=keys.arns["logs"],
                tags=tags,
                protect=protect,
            ),
            opts=with_aws,
        )
        outputs |= {
            "kafkaClusterArn": kafka.cluster_arn,
            "kafkaBootstrapBrokersIam": kafka.bootstrap_brokers_iam,
        }

    database: Database | None = None
    db = cfg.database
    if db.mode == "rds":
        database = Database(
            "database",
            DatabaseArgs(
                identifier=f"{prefix}-postgres",
                engine_version=db.engine_version,
                parameter_group_family=db.parameter_group_family,
                instance_class=db.instance_class,
                allocated_storage_gib=db.allocated_storage_gib,
                max_allocated_storage_gib=db.max_allocated_storage_gib,
                multi_az=db.multi_az,
                backup_retention_days=db.backup_retention_days,
                database_name=db.database_name,
                performance_insights_retention_days=db.performance_insights_retention_days,
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
        outputs |= {
            "dbAddress": database.address,
            "dbPort": database.port,
            "dbName": database.db_name,
            "dbSecretArn": database.master_secret_arn,
        }

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
    platform = PlatformLayer(
        "platform",
        PlatformLayerArgs(
            environment=cfg.stack,
            region=cfg.region,
            name_prefix=prefix,
            k8s_provider=k8s_provider,
            cluster_name=k8s_cluster_name,
            cluster_mode=cfg.cluster.mode,
            kafka_mode=cfg.kafka.mode,
            database_mode=db.mode,
            audit_bucket_name=archive.bucket_name,
            audit_bucket_arn=archive.bucket_arn,
            audit_bucket_kms_key_arn=keys.arns["s3"],
            gitops_repo_url=cfg.gitops.repo_url,
            gitops_revision=cfg.gitops.target_revision,
            high_availability=cfg.is_prod,
            kafka_replication_factor=cfg.kafka.replication_factor,
            local_kafka_replicas=cfg.kafka.broker_count,
            database_name=db.database_name,
            postgres_version=db.engine_version,
            kafka_bootstrap_servers=kafka.bootstrap_brokers_iam if kafka else None,
            msk_cluster_arn=kafka.cluster_arn if kafka else None,
            msk_cluster_name=kafka.cluster_name if kafka else None,
            msk_cluster_uuid=kafka.cluster_uuid if kafka else None,
            db_host=database.address if database else None,
            db_port=database.port if database else None,
            db_name=database.db_name if database else None,
            db_secret_arn=database.master_secret_arn if database else None,
            db_secret_kms_key_arn=keys.arns["rds"] if database else None,
            tags=tags,
        ),
        opts=with_aws,
    )
    outputs["rootApplication"] = platform.root_app_name

    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


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
    }
    return tuple(purpose for purpose in KEY_PURPOSES if used[purpose])


def _static_azs(cfg: PlatformConfig) -> list[str]:
    """AZ names known before deployment: `<region>a`, `b`, `c`.

    Subnets need concrete AZ names at declaration time so resource names and the subnet layout
    stay stable in previews; every region we support has zones a-c available.
    """
    return [f"{cfg.region}{suffix}" for suffix in "abc"[: cfg.network.az_count]]
