"""Bucket policy documents shared by every S3 bucket the platform owns (pure, no Pulumi).

Used by the audit archive bucket (a Pulumi resource) and by the Pulumi state bucket that
`platform bootstrap` creates with boto3 before any stack exists, so both refuse plain HTTP the
same way; the `s3-tls-only` rule (`infra.policies.storage`) checks the declared buckets for it.
"""

from __future__ import annotations

from typing import Any

from infra.cluster.iam import PARTITION, POLICY_VERSION

TLS_ONLY_SID = "DenyInsecureTransport"

PUBLIC_ACCESS_BLOCK_FLAGS: tuple[str, ...] = (
    "block_public_acls",
    "block_public_policy",
    "ignore_public_acls",
    "restrict_public_buckets",
)
"""The four settings of an S3 public access block; every bucket the platform owns turns all on."""


def bucket_arn(bucket: str, partition: str = PARTITION) -> str:
    return f"arn:{partition}:s3:::{bucket}"


def tls_only_policy(bucket_arn: str) -> dict[str, Any]:
    """Deny every request to the bucket and its objects that does not use TLS (S3 otherwise
    accepts plain HTTP)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": TLS_ONLY_SID,
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
