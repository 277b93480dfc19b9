"""The audit archive bucket: private, KMS-encrypted, TLS-only, versioned, with a lifecycle."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.component import PlatformComponent
from infra.naming import merge_tags
from infra.storage.bucket_policy import PUBLIC_ACCESS_BLOCK_FLAGS, tls_only_policy


@dataclass(frozen=True)
class ArchiveBucketArgs:
    """Inputs of the ArchiveBucket component.

    - bucket_name: physical bucket name (globally unique; lowercase, 3..63 characters).
    - kms_key_arn: customer key for SSE-KMS.
    - transition_days: days before objects move to Glacier Instant Retrieval.
    - noncurrent_expiry_days: days an overwritten/deleted version is kept.
    - protect: Pulumi `protect` (the bucket holds the audit trail).
    - force_destroy: allow `pulumi destroy` to empty the bucket (dev/local only).
    - tags: base + user tags.
    """

    bucket_name: str
    kms_key_arn: pulumi.Input[str]
    transition_days: int = 90
    noncurrent_expiry_days: int = 90
    protect: bool = False
    force_destroy: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        name = self.bucket_name
        if not (3 <= len(name) <= 63 and name == name.lower() and "_" not in name):
            raise ValueError(
                f"bucket_name: {name!r}; allowed: 3-63 lowercase letters, digits, '-' and '.'"
            )
        if self.protect and self.force_destroy:
            raise ValueError("force_destroy: true on a protected bucket; allowed: false")


class ArchiveBucket(PlatformComponent[ArchiveBucketArgs]):
    """Where the audit app archives closed windows of the audit log (gzip JSON Lines)."""

    TYPE_TOKEN = "platform:storage:ArchiveBucket"

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]

    def declare(self, name: str, args: ArchiveBucketArgs) -> dict[str, Any]:
        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.bucket_name,
            force_destroy=args.force_destroy,
            tags=merge_tags(args.bucket_name, args.tags, {"data": "audit-archive"}),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},  # ACLs off
            opts=self.child,
        )
        all_blocked: dict[str, Any] = dict.fromkeys(PUBLIC_ACCESS_BLOCK_FLAGS, True)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket.id,
            **all_blocked,
            opts=self.child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": args.kms_key_arn,
                    },
                    "bucket_key_enabled": True,  # fewer KMS calls for many small objects
                }
            ],
            opts=self.child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=self.child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_policy(arn))),
            opts=self.child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                {
                    "id": "archive-tiering",
                    "status": "Enabled",
                    "filter": {"prefix": ""},
                    "transitions": [{"days": args.transition_days, "storage_class": "GLACIER_IR"}],
                    "noncurrent_version_expiration": {
                        "noncurrent_days": args.noncurrent_expiry_days
                    },
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                }
            ],
            opts=self.child,
        )
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        return {"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn}
