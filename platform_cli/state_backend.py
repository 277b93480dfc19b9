"""The Pulumi state backend of one environment: an S3 bucket and a KMS key, through boto3.

`bootstrap()` converges to: a KMS key with rotation and an alias (Pulumi's secrets provider),
and a state bucket with versioning, SSE-KMS under that key, a full public access block, a
TLS-only bucket policy and a lifecycle rule that expires old object versions. It is idempotent:
a second run finds everything in place and changes nothing.

A bucket that already exists but is not compliant (public, unencrypted, unversioned...) is never
silently reused: `audit_bucket()` lists what is wrong and `bootstrap()` stops with those problems,
unless the caller asks for `repair`. `platform verify` runs the same audit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError

from infra.storage.bucket_policy import bucket_arn, tls_only_policy
from platform_cli import aws_session
from platform_cli.aws_names import ExpectedNames

log = logging.getLogger(__name__)

NONCURRENT_VERSION_DAYS = 90
"""Old state versions are kept this long: enough to roll back a bad `pulumi up`."""

ABORT_MULTIPART_DAYS = 7
LIFECYCLE_RULE_ID = "expire-noncurrent-state-versions"
BLOCK_ALL_PUBLIC_ACCESS = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_PUBLIC_GRANTEES = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)

Action = Literal["created", "unchanged", "repaired", "problem"]


@dataclass(frozen=True)
class Step:
    """What bootstrap did (or found) for one resource."""

    resource: str
    name: str
    action: Action
    detail: str = ""


@dataclass
class BootstrapResult:
    env: str
    region: str
    bucket: str
    key_alias: str
    key_arn: str | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def problems(self) -> list[Step]:
        return [s for s in self.steps if s.action == "problem"]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def changed(self) -> bool:
        return any(s.action in ("created", "repaired") for s in self.steps)


class StateBackendError(RuntimeError):
    """The backend cannot be bootstrapped as asked (e.g. the bucket belongs to someone else)."""


# --- Desired configuration (plain data, reused by the audit) -----------------------------------


def lifecycle_configuration() -> dict[str, Any]:
    return {
        "Rules": [
            {
                "ID": LIFECYCLE_RULE_ID,
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_VERSION_DAYS},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS},
            }
        ]
    }


def encryption_configuration(key_arn: str) -> dict[str, Any]:
    return {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {
                    "SSEAlgorithm": "aws:kms",
                    "KMSMasterKeyID": key_arn,
                },
                "BucketKeyEnabled": True,
            }
        ]
    }


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# --- The audit: what is wrong with an existing bucket ------------------------------------------


def _key_matches(configured: str, key_arn: str | None, key_alias: str) -> bool:
    if key_arn is None:
        return True  # no key to compare with: any customer-managed KMS key is accepted
    key_id = key_arn.rsplit("/", 1)[-1]
    return configured in (key_arn, key_id, key_alias) or configured.endswith(f"/{key_id}")


def _is_public_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    aws = principal.get("AWS")
    return aws == "*" or (isinstance(aws, list) and "*" in aws)


def _audit_encryption(s3: Any, bucket: str, key_arn: str | None, key_alias: str) -> list[str]:
    try:
        config = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    except ClientError as exc:
        if _error_code(exc) == "ServerSideEncryptionConfigurationNotFoundError":
            return ["not encrypted: no default encryption (want SSE-KMS)"]
        raise
    rules = config.get("Rules", [])
    if not rules:
        return ["not encrypted: no default encryption (want SSE-KMS)"]
    default = rules[0].get("ApplyServerSideEncryptionByDefault", {})
    algorithm = default.get("SSEAlgorithm", "none")
    if algorithm not in ("aws:kms", "aws:kms:dsse"):
        return [f"encrypted with {algorithm}, not SSE-KMS with the secrets key"]
    configured = str(default.get("KMSMasterKeyID", ""))
    if not configured:
        return ["SSE-KMS with the AWS-managed key, not the platform's customer key"]
    if not _key_matches(configured, key_arn, key_alias):
        return [f"SSE-KMS with another key ({configured}), not {key_alias}"]
    return []


def _audit_public_access(s3: Any, bucket: str) -> list[str]:
    problems: list[str] = []
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        off = sorted(k for k, v in BLOCK_ALL_PUBLIC_ACCESS.items() if block.get(k) is not v)
        if off:
            problems.append(f"public access block incomplete: {', '.join(off)} off")
    except ClientError as exc:
        if _error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
            raise
        problems.append("no public access block")
    grants = s3.get_bucket_acl(Bucket=bucket).get("Grants", [])
    if any(g.get("Grantee", {}).get("URI") in _PUBLIC_GRANTEES for g in grants):
        problems.append("ACL grants access to everyone (public bucket)")
    return problems


def _audit_policy(s3: Any, bucket: str) -> list[str]:
    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        if _error_code(exc) != "NoSuchBucketPolicy":
            raise
        return ["no bucket policy: plain-HTTP requests are not denied"]
    statements = policy.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    problems = []
    if any(
        s.get("Effect") == "Allow" and _is_public_principal(s.get("Principal")) for s in statements
    ):
        problems.append("bucket policy allows access to everyone (public bucket)")
    denies_http = any(
        s.get("Effect") == "Deny"
        and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport", "")).lower()
        == "false"
        for s in statements
    )
    if not denies_http:
        problems.append("bucket policy does not deny plain-HTTP requests (aws:SecureTransport)")
    return problems


def _audit_versions(s3: Any, bucket: str) -> list[str]:
    problems = []
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        problems.append("versioning is not enabled")
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except ClientError as exc:
        if _error_code(exc) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    if not any(
        r.get("Status") == "Enabled" and r.get("NoncurrentVersionExpiration") for r in rules
    ):
        problems.append("no lifecycle rule expiring noncurrent versions")
    return problems


def audit_bucket(s3: Any, bucket: str, key_arn: str | None, key_alias: str) -> list[str]:
    """Every way `bucket` differs from a compliant state bucket (empty list: compliant)."""
    return [
        *_audit_public_access(s3, bucket),
        *_audit_encryption(s3, bucket, key_arn, key_alias),
        *_audit_policy(s3, bucket),
        *_audit_versions(s3, bucket),
    ]


def bucket_exists(s3: Any, bucket: str) -> bool:
    """True if we own `bucket`; raises StateBackendError if someone else does."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or _error_code(exc) in ("404", "NoSuchBucket"):
            return False
        if status == 403:
            raise StateBackendError(
                f"bucket {bucket} exists but belongs to another account"
            ) from exc
        raise
    return True


# --- Converging ---------------------------------------------------------------------------------


def find_key_by_alias(kms: Any, alias: str) -> str | None:
    """The ARN of the key behind `alias`, or None when the alias does not exist."""
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except ClientError as exc:
        if _error_code(exc) == "NotFoundException":
            return None
        raise


def ensure_secrets_key(
    kms: Any, alias: str, tags: dict[str, str], repair: bool
) -> tuple[str | None, Step]:
    """The KMS key behind `alias`, created with rotation on when missing."""
    key_arn = find_key_by_alias(kms, alias)
    if key_arn is None:
        key = kms.create_key(
            Description=f"Pulumi secrets provider ({alias})",
            KeyUsage="ENCRYPT_DECRYPT",
            Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()],
        )["KeyMetadata"]
        kms.enable_key_rotation(KeyId=key["KeyId"])
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
        log.info("created KMS key %s with alias %s", key["Arn"], alias)
        return str(key["Arn"]), Step("kms key", alias, "created", "rotation on")
    metadata = kms.describe_key(KeyId=alias)["KeyMetadata"]
    problems = []
    if metadata.get("KeyState") != "Enabled":
        problems.append(f"key state is {metadata.get('KeyState')}")
    if not kms.get_key_rotation_status(KeyId=metadata["KeyId"]).get("KeyRotationEnabled"):
        problems.append("automatic rotation is off")
    if not problems:
        return key_arn, Step("kms key", alias, "unchanged", "enabled, rotation on")
    if repair and problems == ["automatic rotation is off"]:
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
        return key_arn, Step("kms key", alias, "repaired", "rotation turned on")
    return key_arn, Step("kms key", alias, "problem", "; ".join(problems))


def _apply_bucket_settings(
    s3: Any, bucket: str, key_arn: str, tags: dict[str, str], public_acl: bool
) -> None:
    # The public access block goes first: the bucket is never public, even for a moment.
    s3.put_public_access_block(
        Bucket=bucket, PublicAccessBlockConfiguration=dict(BLOCK_ALL_PUBLIC_ACCESS)
    )
    if public_acl:
        s3.put_bucket_acl(Bucket=bucket, ACL="private")
    s3.put_bucket_encryption(
        Bucket=bucket, ServerSideEncryptionConfiguration=encryption_configuration(key_arn)
    )
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_policy(bucket_arn(bucket))))
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration=lifecycle_configuration()
    )
    s3.put_bucket_tagging(
        Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]}
    )


def ensure_state_bucket(
    s3: Any,
    bucket: str,
    region: str,
    key_arn: str,
    key_alias: str,
    tags: dict[str, str],
    repair: bool,
) -> Step:
    """Create the compliant bucket, or audit the existing one (and fix it only with `repair`)."""
    if not bucket_exists(s3, bucket):
        location = {} if region == "us-east-1" else {"LocationConstraint": region}
        s3.create_bucket(
            Bucket=bucket, **({"CreateBucketConfiguration": location} if location else {})
        )
        _apply_bucket_settings(s3, bucket, key_arn, tags, public_acl=False)
        log.info("created state bucket %s", bucket)
        return Step(
            "s3 bucket",
            bucket,
            "created",
            "versioning, SSE-KMS, public access block, TLS-only policy, lifecycle",
        )
    problems = audit_bucket(s3, bucket, key_arn, key_alias)
    if not problems:
        return Step("s3 bucket", bucket, "unchanged", "compliant")
    if repair:
        public_acl = any("ACL" in p for p in problems)
        _apply_bucket_settings(s3, bucket, key_arn, tags, public_acl=public_acl)
        remaining = audit_bucket(s3, bucket, key_arn, key_alias)
        if not remaining:
            return Step("s3 bucket", bucket, "repaired", "fixed: " + "; ".join(problems))
        problems = remaining
    return Step("s3 bucket", bucket, "problem", "; ".join(problems))


def bootstrap(names: ExpectedNames, tags: dict[str, str], repair: bool = False) -> BootstrapResult:
    """Converge the environment's state backend; see the module docstring."""
    region = names.region
    account = aws_session.account_id(region)
    result = BootstrapResult(
        env=names.env,
        region=region,
        bucket=names.state_bucket(account),
        key_alias=names.secrets_key_alias,
    )
    kms = aws_session.client("kms", region)
    s3 = aws_session.client("s3", region)
    key_tags = {**tags, "purpose": "pulumi-secrets"}
    result.key_arn, key_step = ensure_secrets_key(kms, names.secrets_key_alias, key_tags, repair)
    result.steps.append(key_step)
    if result.key_arn is None or key_step.action == "problem":
        return result
    try:
        step = ensure_state_bucket(
            s3,
            result.bucket,
            region,
            result.key_arn,
            names.secrets_key_alias,
            {**tags, "purpose": "pulumi-state"},
            repair,
        )
    except StateBackendError as exc:
        step = Step("s3 bucket", result.bucket, "problem", str(exc))
    result.steps.append(step)
    return result


def pulumi_commands(result: BootstrapResult, endpoint: str | None = None) -> list[str]:
    """The exact commands that point Pulumi at this backend and create the stack."""
    query = f"region={result.region}"
    if endpoint:
        # An emulator: gocloud's S3 URL options for a custom endpoint with path-style addressing.
        host = endpoint.split("://", 1)[-1].rstrip("/")
        insecure = "&disableSSL=true" if endpoint.startswith("http://") else ""
        query += f"&endpoint={host}&s3ForcePathStyle=true{insecure}"
    secrets = f"awskms://{result.key_alias}?region={result.region}"
    return [
        f"pulumi login 's3://{result.bucket}?{query}'",
        f"pulumi stack init {result.env} --secrets-provider '{secrets}'",
    ]
