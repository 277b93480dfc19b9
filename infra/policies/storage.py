"""S3: every bucket blocks public access and refuses requests that are not TLS."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import companion_rule, rule
from infra.policies.encryption import S3_BUCKETS
from infra.policies.model import RuleContext
from infra.policies.values import as_list, get, is_true, parse_json_object, statements
from infra.storage.bucket_policy import PUBLIC_ACCESS_BLOCK_FLAGS

S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"


def _camel(snake: str) -> str:
    # The engine sees inputs camelCased; pydantic's converter is not in the pack's requirements.
    head, *rest = snake.split("_")
    return head + "".join(word.capitalize() for word in rest)


PUBLIC_ACCESS_FLAGS = tuple(_camel(flag) for flag in PUBLIC_ACCESS_BLOCK_FLAGS)


def _flags_off(inputs: Mapping[str, Any]) -> list[str]:
    return [flag for flag in PUBLIC_ACCESS_FLAGS if not is_true(inputs.get(flag))]


@rule(
    "s3-public-access-block-complete",
    "S3 public access blocks turn on all four flags.",
    types=[S3_PUBLIC_ACCESS_BLOCK],
)
def s3_public_access_block_complete(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    off = _flags_off(inputs)
    if off:
        yield f"public access block leaves {', '.join(off)} off: set all four to true"


companion_rule(
    "s3-public-access-blocked",
    "Every S3 bucket has a public access block with all four flags on.",
    types=S3_BUCKETS,
    companions=[S3_PUBLIC_ACCESS_BLOCK],
    prop="bucket",
    holds=lambda block: not _flags_off(block),
    missing="bucket has no BucketPublicAccessBlock with all four flags on pointing at it",
)


def denies_insecure_transport(policy: Any) -> bool:
    """True when the document denies every request made without TLS (aws:SecureTransport false)."""
    document = parse_json_object(policy)
    if document is None:
        return False
    for statement in statements(document):
        if statement.get("Effect") != "Deny":
            continue
        actions = as_list(statement.get("Action"))
        if "*" not in actions and "s3:*" not in actions:
            continue
        secure = get(statement, "Condition", "Bool", "aws:SecureTransport")
        if str(secure).lower() == "false":
            return True
    return False


companion_rule(
    "s3-tls-only",
    "Every S3 bucket has a policy denying requests without TLS (aws:SecureTransport=false).",
    types=S3_BUCKETS,
    companions=[S3_BUCKET_POLICY],
    prop="bucket",
    holds=lambda policy: denies_insecure_transport(policy.get("policy")),
    missing=(
        "bucket has no BucketPolicy that denies s3:* when aws:SecureTransport is false, so "
        "plain-HTTP requests are accepted"
    ),
)
