"""`platform bootstrap` against moto and real LocalStack: create, re-run, refuse, repair."""

from __future__ import annotations

import json

from typer.testing import CliRunner, Result

from platform_cli.aws_names import names_for_env
from platform_cli.main import app
from platform_cli.state_backend import (
    LIFECYCLE_RULE_ID,
    NONCURRENT_VERSION_DAYS,
    audit_bucket,
    bootstrap,
)
from tests.aws.conftest import Emulator, account_of, public_unencrypted_bucket

runner = CliRunner()
DEV = names_for_env("dev")


def _run(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False, terminal_width=400)


def test_first_run_creates_a_compliant_backend_and_prints_the_pulumi_commands(
    aws: Emulator,
) -> None:
    result = _run("bootstrap", "--env", "dev")
    assert result.exit_code == 0, result.output

    account = account_of(aws, DEV.region)
    bucket = f"plat-dev-pulumi-state-{account}"
    host = aws.endpoint.removeprefix("http://")
    assert (
        f"pulumi login 's3://{bucket}?region=eu-west-1&endpoint={host}"
        "&s3ForcePathStyle=true&disableSSL=true'" in result.output
    )
    assert (
        "pulumi stack init dev --secrets-provider "
        "'awskms://alias/plat-dev-pulumi-secrets?region=eu-west-1'" in result.output
    )

    s3 = aws.client("s3", DEV.region)
    kms = aws.client("kms", DEV.region)
    key = kms.describe_key(KeyId=DEV.secrets_key_alias)["KeyMetadata"]
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert sse["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key["Arn"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    statement = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rule = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]
    assert rule["ID"] == LIFECYCLE_RULE_ID
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == NONCURRENT_VERSION_DAYS
    assert audit_bucket(s3, bucket, key["Arn"], DEV.secrets_key_alias) == []


def test_second_run_changes_nothing_and_says_so(aws: Emulator) -> None:
    first = bootstrap(DEV, {"project": "platform"})
    assert [s.action for s in first.steps] == ["created", "created"]

    second = bootstrap(DEV, {"project": "platform"})
    assert [s.action for s in second.steps] == ["unchanged", "unchanged"]
    assert second.key_arn == first.key_arn
    assert not second.changed

    cli = _run("bootstrap", "--env", "dev")
    assert cli.exit_code == 0, cli.output
    assert "Nothing changed" in cli.output


def test_existing_public_unencrypted_bucket_is_reported_not_reused(aws: Emulator) -> None:
    bucket = public_unencrypted_bucket(aws, DEV)

    result = _run("bootstrap", "--env", "dev")

    assert result.exit_code == 1, result.output
    assert "not encrypted" in result.output
    assert "allows access to everyone" in result.output
    assert "versioning is not enabled" in result.output
    assert "NOT reused" in result.output
    assert "pulumi login" not in result.output
    # Reported only: the bucket is exactly as it was.
    s3 = aws.client("s3", DEV.region)
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]["Effect"] == (
        "Allow"
    )
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled"


def test_repair_makes_a_misconfigured_bucket_compliant(aws: Emulator) -> None:
    bucket = public_unencrypted_bucket(aws, DEV)

    result = _run("bootstrap", "--env", "dev", "--repair")

    assert result.exit_code == 0, result.output
    assert "repaired" in result.output
    s3 = aws.client("s3", DEV.region)
    key_arn = aws.client("kms", DEV.region).describe_key(KeyId=DEV.secrets_key_alias)[
        "KeyMetadata"
    ]["Arn"]
    assert audit_bucket(s3, bucket, key_arn, DEV.secrets_key_alias) == []


def test_bootstrap_of_the_localstack_stack_uses_its_region(aws: Emulator) -> None:
    names = names_for_env("localstack")
    result = _run("bootstrap", "--env", "localstack")
    assert result.exit_code == 0, result.output
    bucket = names.state_bucket(account_of(aws, "us-east-1"))
    location = aws.client("s3", "us-east-1").get_bucket_location(Bucket=bucket)
    assert location.get("LocationConstraint") in (None, "us-east-1")
    assert "pulumi stack init localstack" in result.output
