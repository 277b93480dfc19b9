"""KMS keys and the audit archive bucket under mocks."""

from __future__ import annotations

import json

import pytest

from infra.policies.storage import denies_insecure_transport
from infra.security.keys import KEY_PURPOSES, Keys, KeysArgs, key_policy
from infra.storage.archive_bucket import ArchiveBucket, ArchiveBucketArgs
from infra.storage.bucket_policy import tls_only_policy
from platform_cli.offline import Declared, run_program

TAGS = {"project": "platform", "stack": "test", "managed-by": "pulumi"}


@pytest.fixture(scope="module")
def keys() -> Declared:
    args = KeysArgs(name_prefix="plat-test", protect=True, tags=TAGS)
    return run_program(lambda: Keys("keys", args), stack="test", region="eu-west-1")


def test_one_rotating_key_and_alias_per_purpose(keys: Declared) -> None:
    created = keys.of_type("aws:kms/key:Key")
    assert len(created) == len(KEY_PURPOSES)
    assert all(k.inputs["enableKeyRotation"] is True for k in created)
    aliases = sorted(a.inputs["name"] for a in keys.of_type("aws:kms/alias:Alias"))
    assert aliases == sorted(f"alias/plat-test-{p}" for p in KEY_PURPOSES)


def test_keys_protected_when_asked(keys: Declared) -> None:
    assert all(k.protect for k in keys.of_type("aws:kms/key:Key"))


def test_logs_key_admits_cloudwatch_logs_only_for_this_account() -> None:
    policy = json.loads(key_policy("111122223333", "eu-west-1", "logs"))
    logs = next(s for s in policy["Statement"] if s["Sid"] == "CloudWatchLogsUse")
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    condition = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert condition.startswith("arn:aws:logs:eu-west-1:111122223333:")
    other = json.loads(key_policy("111122223333", "eu-west-1", "rds"))
    assert [s["Sid"] for s in other["Statement"]] == ["AccountAdministers"]


def test_ebs_key_admits_the_autoscaling_service_linked_role() -> None:
    policy = json.loads(key_policy("111122223333", "eu-west-1", "ebs"))
    principals = {s["Sid"]: s["Principal"]["AWS"] for s in policy["Statement"][1:]}
    assert set(principals) == {"AutoScalingUsesKeyForNodeVolumes", "AutoScalingCreatesGrants"}
    assert all(p.endswith("/AWSServiceRoleForAutoScaling") for p in principals.values())
    grants = policy["Statement"][2]
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_key_policy_rendered_with_account(keys: Declared) -> None:
    rds = keys.one("aws:kms/key:Key", "-rds")
    policy = json.loads(rds.inputs["policy"])
    assert policy["Statement"][0]["Principal"]["AWS"] == "arn:aws:iam::123456789012:root"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"purposes": ("eks", "gpu")}, "purposes: \\['gpu'\\] unknown"),
        ({"deletion_window_days": 3}, "deletion_window_days: 3; allowed: 7..30"),
    ],
)
def test_keys_args_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeysArgs(name_prefix="p", **kwargs).validate()


@pytest.fixture(scope="module")
def archive() -> Declared:
    args = ArchiveBucketArgs(
        bucket_name="plat-test-audit-archive",
        kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/s3",
        protect=True,
        tags=TAGS,
    )
    return run_program(lambda: ArchiveBucket("archive", args), stack="test", region="eu-west-1")


def test_bucket_blocks_public_access(archive: Declared) -> None:
    block = archive.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )


def test_bucket_sse_kms_with_customer_key(archive: Declared) -> None:
    sse = archive.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs
    default = sse["rules"][0]["applyServerSideEncryptionByDefault"]
    assert default == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": "arn:aws:kms:eu-west-1:123456789012:key/s3",
    }


def test_bucket_policy_denies_plain_http(archive: Declared) -> None:
    document = archive.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"]
    policy = json.loads(document)
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    component = archive.one("platform:storage:ArchiveBucket")
    bucket_arn = archive.component_outputs[component.urn]["bucket_arn"]
    assert policy == tls_only_policy(bucket_arn)  # the bucket and every object in it
    assert denies_insecure_transport(document)  # what the s3-tls-only policy rule accepts


def test_bucket_versioned_protected_and_lifecycled(archive: Declared) -> None:
    bucket = archive.one("aws:s3/bucket:Bucket")
    assert bucket.protect is True and bucket.inputs["forceDestroy"] is False
    versioning = archive.one("aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    rule = archive.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs[
        "rules"
    ][0]
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 90
    ownership = archive.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bucket_name": "Bad_Name"}, "bucket_name: 'Bad_Name'"),
        ({"bucket_name": "ok-name", "protect": True, "force_destroy": True}, "force_destroy"),
    ],
)
def test_bucket_args_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ArchiveBucketArgs(kms_key_arn="k", **kwargs).validate()
