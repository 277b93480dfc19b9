"""Encryption at rest with a customer-managed KMS key (EKS secrets, MSK, RDS, S3, EBS)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import companion_rule, rule
from infra.policies.model import RuleContext, Severity
from infra.policies.values import as_list, get, is_true, non_empty_string

EKS_CLUSTER = "aws:eks/cluster:Cluster"
MSK_CLUSTER = "aws:msk/cluster:Cluster"
RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EBS_VOLUME = "aws:ebs/volume:Volume"
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
KMS_KEY = "aws:kms/key:Key"
S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_SSE_CONFIGS = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")


@rule(
    "eks-secrets-encrypted",
    "EKS clusters envelope-encrypt Kubernetes secrets with a customer KMS key.",
    types=[EKS_CLUSTER],
)
def eks_secrets_encrypted(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    key = get(inputs, "encryptionConfig", "provider", "keyArn")
    resources = as_list(get(inputs, "encryptionConfig", "resources"))
    if not non_empty_string(key) or "secrets" not in resources:
        yield (
            "Kubernetes secrets are not encrypted with a customer KMS key: set "
            "encryptionConfig.provider.keyArn and encryptionConfig.resources=['secrets']"
        )


@rule(
    "msk-encrypted-at-rest",
    "MSK brokers encrypt their storage with a customer KMS key.",
    types=[MSK_CLUSTER],
)
def msk_encrypted_at_rest(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if not non_empty_string(get(inputs, "encryptionInfo", "encryptionAtRestKmsKeyArn")):
        yield (
            "MSK storage uses the AWS-owned key: set "
            "encryptionInfo.encryptionAtRestKmsKeyArn to the customer KMS key"
        )


@rule(
    "rds-encrypted-at-rest",
    "RDS storage is encrypted with a customer KMS key.",
    types=[RDS_INSTANCE, RDS_CLUSTER],
)
def rds_encrypted_at_rest(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if not is_true(inputs.get("storageEncrypted")):
        yield "RDS storage is not encrypted: set storageEncrypted=true"
    elif not non_empty_string(inputs.get("kmsKeyId")):
        yield "RDS storage uses the AWS-managed key: set kmsKeyId to the customer KMS key"


def _ebs_problem(ebs: Any) -> str | None:
    if not is_true(get(ebs, "encrypted")):
        return "is not encrypted (set ebs.encrypted='true')"
    if not non_empty_string(get(ebs, "kmsKeyId")):
        return "uses the AWS-managed key (set ebs.kmsKeyId to the customer KMS key)"
    return None


@rule(
    "ebs-encrypted",
    "EBS volumes (launch-template block devices, standalone volumes, node groups' disks) use a "
    "customer KMS key.",
    types=[LAUNCH_TEMPLATE, EBS_VOLUME, EKS_NODE_GROUP],
)
def ebs_encrypted(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if resource_type == EKS_NODE_GROUP:
        # Without a launch template EKS builds the nodes' disks itself: no customer key, and
        # none of the launch template's other settings (IMDSv2) apply either.
        template = inputs.get("launchTemplate")
        if not (get(template, "id") or get(template, "name")):
            yield (
                "node group has no launchTemplate, so EKS creates its disks without the customer "
                "key (and without the template's IMDSv2 setting): launch it from the template"
            )
        return
    if resource_type == EBS_VOLUME:
        problem = _ebs_problem(inputs)
        if problem:
            yield f"EBS volume {problem.replace('ebs.', '')}"
        return
    mappings = as_list(inputs.get("blockDeviceMappings"))
    if not mappings:
        yield (
            "launch template declares no blockDeviceMappings, so nodes boot from the AMI's "
            "root volume without the customer key: map the root device with ebs.encrypted='true' "
            "and ebs.kmsKeyId"
        )
        return
    for mapping in mappings:
        device = get(mapping, "deviceName") or "?"
        ebs = get(mapping, "ebs")
        if ebs is None:
            continue  # an instance-store or NoDevice mapping holds no EBS data
        problem = _ebs_problem(ebs)
        if problem:
            yield f"block device {device} {problem}"


def _sse_config_problem(rules: Any) -> str | None:
    for entry in as_list(rules):
        algorithm = get(entry, "applyServerSideEncryptionByDefault", "sseAlgorithm")
        key = get(entry, "applyServerSideEncryptionByDefault", "kmsMasterKeyId")
        if algorithm in KMS_ALGORITHMS and non_empty_string(key):
            return None
    return (
        "default encryption is not SSE-KMS with a customer key (set "
        "applyServerSideEncryptionByDefault.sseAlgorithm='aws:kms' and kmsMasterKeyId)"
    )


@rule(
    "s3-sse-config-customer-key",
    "S3 default-encryption configurations use SSE-KMS with a customer key.",
    types=S3_SSE_CONFIGS,
)
def s3_sse_config_customer_key(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    problem = _sse_config_problem(inputs.get("rules"))
    if problem:
        yield problem


def _inline_sse_ok(bucket: Mapping[str, Any]) -> bool:
    # The v1 Bucket may carry its default encryption inline instead of in a companion.
    inline = get(bucket, "serverSideEncryptionConfiguration", "rules")
    return inline is not None and _sse_config_problem(inline) is None


companion_rule(
    "s3-bucket-encrypted",
    "Every S3 bucket has a default-encryption configuration with a customer KMS key.",
    types=S3_BUCKETS,
    companions=S3_SSE_CONFIGS,
    prop="bucket",
    holds=lambda config: _sse_config_problem(config.get("rules")) is None,
    holds_inline=_inline_sse_ok,
    missing=(
        "bucket has no BucketServerSideEncryptionConfiguration with SSE-KMS and a customer "
        "key pointing at it"
    ),
)


@rule(
    "kms-key-rotation",
    "Customer KMS keys rotate their key material yearly.",
    severity=Severity.ADVISORY,
    types=[KMS_KEY],
)
def kms_key_rotation(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    # Asymmetric and HMAC keys cannot rotate; only symmetric keys are held to this.
    spec = inputs.get("customerMasterKeySpec") or inputs.get("keySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and not is_true(inputs.get("enableKeyRotation")):
        yield "KMS key does not rotate: set enableKeyRotation=true"
