"""The CI's read-only preview role: its documents (pure) and what the program declares (mocks).

It must read the cloud and the stack's state, decrypt with the stack's secrets key only, and
write nothing; only this account's principals tagged for this environment may assume it.
"""

from __future__ import annotations

import functools
import json

import pytest

from infra.security import ci_roles
from infra.security.ci_roles import CiRoles, CiRolesArgs
from platform_cli.aws_names import names_for_env
from platform_cli.offline import FAKE_ACCOUNT, Declared, run_program
from tests.stacks import committed_stack

REGION = "eu-west-1"
WRITE_WORDS = (
    "Put",
    "Delete",
    "Create",
    "Update",
    "Modify",
    "Attach",
    "Detach",
    "Tag",
    "Untag",
    "Start",
    "Stop",
    "Reboot",
    "Run",
    "Terminate",
    "Pass",
    "Encrypt",
    "Generate",
    "Associate",
    "Disassociate",
    "Replace",
    "Restore",
    "Set",
    "Upload",
    "Batch",
)


@functools.cache
def stack(env: str) -> Declared:
    return committed_stack(env)


def _statements(policy: dict) -> dict[str, dict]:
    return {s["Sid"]: s for s in policy["Statement"]}


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_every_allowed_action_reads_and_none_is_a_wildcard_write(env: str) -> None:
    policy = ci_roles.preview_policy(FAKE_ACCOUNT, REGION, f"plat-{env}")
    allowed = [
        action
        for s in policy["Statement"]
        if s["Effect"] == "Allow"
        for action in _as_list(s["Action"])
    ]
    assert "*" not in allowed and not any(a.endswith(":*") for a in allowed)
    for action in allowed:
        verb = action.split(":", 1)[1]
        if action == "kms:Decrypt":
            continue  # scoped to one key below
        assert ci_roles.is_read_only_action(action), action
        assert not verb.startswith(WRITE_WORDS), action
    # Reads that would expose data are not granted anywhere.
    for data_read in (
        "secretsmanager:GetSecretValue",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "kms:GenerateDataKey",
    ):
        assert data_read not in allowed
    anywhere = _statements(policy)["ReadManagedResources"]
    assert anywhere["Resource"] == "*"
    assert not any(a.startswith(("s3:GetObject", "s3:Get*")) for a in anywhere["Action"])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_state_bucket_is_read_only_and_decrypt_is_the_stacks_key_only(env: str) -> None:
    names = names_for_env(env)  # the names `platform bootstrap` creates
    bucket = f"arn:aws:s3:::{names.state_bucket(FAKE_ACCOUNT)}"
    statements = _statements(ci_roles.preview_policy(FAKE_ACCOUNT, REGION, f"plat-{env}"))
    assert statements["ListStateBucket"]["Resource"] == bucket
    assert statements["ReadStateObjects"]["Resource"] == f"{bucket}/*"
    assert set(statements["ReadStateObjects"]["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    deny = statements["NeverWriteState"]
    assert deny["Effect"] == "Deny" and set(deny["Resource"]) == {bucket, f"{bucket}/*"}
    assert {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"} <= set(deny["Action"])
    decrypt = statements["DecryptWithStackSecretsKey"]
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert decrypt["Resource"] == f"arn:aws:kms:{REGION}:{FAKE_ACCOUNT}:key/*"
    assert decrypt["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": names.secrets_key_alias}
    }
    # Every other statement touches no KMS key at all.
    others = [s for sid, s in statements.items() if sid != "DecryptWithStackSecretsKey"]
    assert not any(a.startswith("kms:Decrypt") for s in others for a in _as_list(s["Action"]))


def test_is_read_only_action_refuses_writes_and_wildcards() -> None:
    for action in ("*", "s3:*", "ec2:RunInstances", "iam:PassRole", "s3:PutObject", "kms:"):
        assert not ci_roles.is_read_only_action(action), action
    for action in ("ec2:Describe*", "iam:GetRole", "eks:ListClusters"):
        assert ci_roles.is_read_only_action(action), action


def test_the_trust_policy_admits_only_this_accounts_tagged_principals() -> None:
    trust = ci_roles.preview_trust_policy(FAKE_ACCOUNT, "prod")
    [statement] = trust["Statement"]
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{FAKE_ACCOUNT}:root"}
    assert statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {
        "StringEquals": {"aws:PrincipalTag/platform-ci": "preview-prod"}
    }


@pytest.mark.slow  # the whole program under the mocks, per stack
@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_program_declares_the_role_with_those_documents(env: str) -> None:
    declared = stack(env)
    [component] = declared.of_type("platform:security:CiRoles")
    role = declared.one("aws:iam/role:Role", "ci-preview")
    assert role.parent == component.urn
    assert role.inputs["name"] == f"plat-{env}-ci-preview"
    assert role.inputs["maxSessionDuration"] == 3600
    assert json.loads(role.inputs["assumeRolePolicy"]) == ci_roles.preview_trust_policy(
        FAKE_ACCOUNT, env
    )
    policy = declared.one("aws:iam/rolePolicy:RolePolicy", "ci-preview-read")
    assert policy.parent == component.urn
    assert json.loads(policy.inputs["policy"]) == ci_roles.preview_policy(
        FAKE_ACCOUNT, REGION, f"plat-{env}"
    )
    assert role.urn in policy.dependencies
    assert declared.outputs["ciPreviewRoleArn"]


def test_the_role_may_view_but_not_administer_the_cluster() -> None:
    declared = stack("dev")
    association = declared.one(
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "ci-preview-eks-view"
    )
    assert association.inputs["policyArn"].endswith("/AmazonEKSAdminViewPolicy")
    assert association.inputs["accessScope"] == {"type": "cluster"}
    entry = declared.one("aws:eks/accessEntry:AccessEntry", "ci-preview-eks")
    assert entry.urn in association.dependencies
    assert entry.inputs["clusterName"] == "plat-dev-eks"


def test_the_localstack_stack_has_no_ci_role() -> None:
    assert stack("localstack").of_type("platform:security:CiRoles") == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name_prefix", "", "name_prefix"),
        ("environment", "dev env", "environment"),
        ("region", "", "region"),
    ],
)
def test_bad_args_fail_before_any_resource(field: str, value: str, message: str) -> None:
    args = {"name_prefix": "plat-dev", "environment": "dev", "region": REGION, field: value}

    def program() -> None:
        CiRoles("ci", CiRolesArgs(**args))  # type: ignore[arg-type]

    with pytest.raises(Exception, match=message):
        run_program(program, stack="dev", region=REGION)
