"""The platform program: composes the components for one typed stack config.

`build(cfg)` is the whole program; `infra/__main__.py` calls it with the stack's config for
`pulumi up`, and `infra.offline.run_stack` calls it under mocks for the tests and `platform plan`.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import PlatformConfig
from infra.network.vpc import Network, NetworkArgs
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
            # LocalStack's stack has no EKS/MSK/RDS/ECR, so it needs only the S3 and logs keys.
            purposes=("s3", "logs") if cfg.is_localstack else KEY_PURPOSES,
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
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def _static_azs(cfg: PlatformConfig) -> list[str]:
    """AZ names known before deployment: `<region>a`, `b`, `c`.

    Subnets need concrete AZ names at declaration time so resource names and the subnet layout
    stay stable in previews; every region we support has zones a-c available.
    """
    return [f"{cfg.region}{suffix}" for suffix in "abc"[: cfg.network.az_count]]
