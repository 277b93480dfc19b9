"""The notifier's channel credentials: a value-less, KMS-encrypted Secrets Manager secret per
cloud env, readable by External Secrets only (by exact ARN), and named as the rendered
ExternalSecret reads it."""

from __future__ import annotations

import json

import pytest
import yaml

from infra.config import load_stack_file
from infra.contracts import ENVIRONMENTS, notifier_channels_secret_id
from platform_cli.offline import Declared
from platform_cli.rehearsal.run import GITOPS_ROOT
from tests.stacks import committed_stack

CLOUD = [env for env in ENVIRONMENTS if load_stack_file(env).flavour == "aws"]


@pytest.fixture(scope="module", params=CLOUD)
def stack(request: pytest.FixtureRequest) -> tuple[str, Declared]:
    return request.param, committed_stack(request.param)


def test_the_secret_is_declared_encrypted_without_a_value(stack: tuple[str, Declared]) -> None:
    env, declared = stack
    cfg = load_stack_file(env)
    secret = declared.one("aws:secretsmanager/secret:Secret", "-notifier-channels")
    assert secret.inputs["name"] == notifier_channels_secret_id(cfg.name_prefix)
    key = declared.one("aws:kms/key:Key", "keys-secrets")
    assert key.urn in secret.property_dependencies.get("kmsKeyId", ())
    assert secret.inputs["recoveryWindowInDays"] >= 7
    assert secret.protect == cfg.protection.protect_resources
    # The value is the operators' to set: no version (and so no plaintext) in the program.
    assert not declared.of_type("aws:secretsmanager/secretVersion:SecretVersion")


def test_only_external_secrets_may_read_it(stack: tuple[str, Declared]) -> None:
    _, declared = stack
    secret = declared.one("aws:secretsmanager/secret:Secret", "-notifier-channels")
    readers = []
    for policy in declared.of_type("aws:iam/rolePolicy:RolePolicy"):
        document = json.loads(policy.inputs["policy"])
        for statement in document["Statement"]:
            resources = statement.get("Resource", [])
            resources = [resources] if isinstance(resources, str) else resources
            if any("notifier-channels" in str(r) for r in resources):
                readers.append((policy.name, statement["Sid"], statement["Action"]))
    assert readers, f"no policy grants {secret.inputs['name']}"
    assert all("external-secrets" in name for name, _, _ in readers), readers
    for _, sid, actions in readers:
        assert sid == "ReadAppSecrets"
        assert set(actions) <= {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}


@pytest.mark.parametrize("env", CLOUD)
def test_the_rendered_external_secret_reads_that_secret(env: str) -> None:
    rendered = yaml.safe_load(
        (
            GITOPS_ROOT / env / "platform-config" / "external-secret-notifier-channels.yaml"
        ).read_text()
    )
    keys = {item["remoteRef"]["key"] for item in rendered["spec"]["data"]}
    assert keys == {notifier_channels_secret_id(load_stack_file(env).name_prefix)}
    assert rendered["spec"]["secretStoreRef"] == {
        "kind": "ClusterSecretStore",
        "name": "aws-secrets-manager",
    }
