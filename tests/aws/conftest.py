"""The AWS emulator fixture: every test here runs against moto's server AND real LocalStack.

- moto: `ThreadedMotoServer` on a free loopback port, always.
- LocalStack: `LOCALSTACK_ENDPOINT` when set and healthy, else host-mode LocalStack started
  from `.localstack-venv` (built by `make localstack-venv`, which `make test` runs when Python 3.13
  exists), shared with tests/apps (tests/conftest.py). When neither is possible the LocalStack leg
  is skipped with the reason.

Both servers are session-scoped and stopped at the end. moto's state is process-global (the app
tests' moto server shares it), so tests never reset it: they delete what they created instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from platform_cli.aws_names import ExpectedNames, names_for_env
from platform_cli.embedded import free_port, wait_for_port


@dataclass(frozen=True)
class Emulator:
    kind: str  # "moto" or "localstack"
    endpoint: str

    def client(self, service: str, region: str) -> Any:
        make_client: Any = boto3.client  # boto3's stubs overload on literal service names
        return make_client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )


@pytest.fixture(scope="session")
def moto_emulator() -> Iterator[Emulator]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_for_port("127.0.0.1", port)
        yield Emulator("moto", f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def localstack_emulator(localstack_endpoint: str) -> Emulator:
    """Real LocalStack (tests/conftest.py starts it once per session, or skips with the reason)."""
    return Emulator("localstack", localstack_endpoint)


@pytest.fixture(
    params=["moto", pytest.param("localstack", marks=pytest.mark.localstack)],
    scope="session",
)
def emulator(request: pytest.FixtureRequest) -> Emulator:
    """Each test using this runs once per emulator."""
    emulator: Emulator = request.getfixturevalue(f"{request.param}_emulator")
    return emulator


def _point_cli_at(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps table cells at 80 columns otherwise
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def aws(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The CLI points at `emulator`; the state backends of dev and localstack are purged after."""
    _point_cli_at(monkeypatch, emulator)
    yield emulator
    for env in ("dev", "localstack"):
        purge_state_backend(emulator, names_for_env(env))


@pytest.fixture
def moto_aws(moto_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """Like `aws`, on moto only: for EKS/MSK/RDS/ECR, which LocalStack's free edition refuses."""
    _point_cli_at(monkeypatch, moto_emulator)
    yield moto_emulator
    purge_state_backend(moto_emulator, names_for_env("dev"))


def account_of(emulator: Emulator, region: str) -> str:
    return str(emulator.client("sts", region).get_caller_identity()["Account"])


def purge_state_backend(emulator: Emulator, names: ExpectedNames) -> None:
    """Delete the state bucket (all versions) and the secrets alias; schedule the key deletion."""
    s3 = emulator.client("s3", names.region)
    bucket = names.state_bucket(account_of(emulator, names.region))
    with contextlib.suppress(ClientError):
        s3.delete_bucket_policy(Bucket=bucket)
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        s3.delete_bucket(Bucket=bucket)
    kms = emulator.client("kms", names.region)
    with contextlib.suppress(ClientError):
        key_id = kms.describe_key(KeyId=names.secrets_key_alias)["KeyMetadata"]["KeyId"]
        kms.delete_alias(AliasName=names.secrets_key_alias)
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)


def public_unencrypted_bucket(emulator: Emulator, names: ExpectedNames) -> str:
    """Create the state bucket's name as a public, unencrypted, unversioned bucket."""
    s3 = emulator.client("s3", names.region)
    bucket = names.state_bucket(account_of(emulator, names.region))
    location = {} if names.region == "us-east-1" else {"LocationConstraint": names.region}
    s3.create_bucket(Bucket=bucket, **({"CreateBucketConfiguration": location} if location else {}))
    with contextlib.suppress(ClientError):  # AWS-style default encryption, if the emulator adds it
        s3.delete_bucket_encryption(Bucket=bucket)
    s3.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    }
                ],
            }
        ),
    )
    return bucket
