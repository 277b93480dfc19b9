"""Pure helpers of the cluster component: trust policies, ARNs, AMI type and the kubeconfig."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.cluster import iam


@pytest.mark.parametrize(
    ("policy", "service", "actions"),
    [
        (iam.cluster_trust_policy(), "eks.amazonaws.com", {"sts:AssumeRole", "sts:TagSession"}),
        (iam.node_trust_policy(), "ec2.amazonaws.com", {"sts:AssumeRole"}),
    ],
)
def test_trust_policies_name_one_service_and_its_actions(
    policy: dict, service: str, actions: set[str]
) -> None:
    assert policy["Version"] == "2012-10-17"
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": service}
    action = statement["Action"]
    assert ({action} if isinstance(action, str) else set(action)) == actions
    assert "Condition" not in statement
    json.dumps(policy)  # IAM takes the JSON text; it must serialise as-is


CLUSTER_ARN = "arn:aws:eks:eu-west-1:123456789012:cluster/plat-dev-eks"


def test_pod_identity_trust_is_conditioned_on_the_account_and_the_cluster() -> None:
    (statement,) = iam.pod_identity_trust_policy(CLUSTER_ARN)["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnEquals": {"aws:SourceArn": CLUSTER_ARN},
    }


@pytest.mark.parametrize(
    "arn", ["", "arn:aws:eks:eu-west-1:12345:cluster/x", "arn:aws:iam::123456789012:role/x"]
)
def test_a_trust_policy_needs_a_cluster_arn(arn: str) -> None:
    with pytest.raises(ValueError, match="allowed: arn:aws:eks:<region>:<account>:cluster/<name>"):
        iam.pod_identity_trust_policy(arn)


def test_managed_policy_and_access_policy_arns() -> None:
    assert (
        iam.managed_policy_arn("AmazonEKSClusterPolicy")
        == "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
    )
    assert (
        iam.managed_policy_arn(iam.EBS_CSI_MANAGED_POLICY)
        == "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    )
    assert (
        iam.eks_access_policy_arn("AmazonEKSClusterAdminPolicy")
        == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    )


def test_ebs_kms_policy_scopes_every_statement_to_the_key_and_grants_to_aws_only() -> None:
    key = "arn:aws:kms:eu-west-1:123456789012:key/abc"
    policy = iam.ebs_kms_policy(key)
    assert {s["Resource"] for s in policy["Statement"]} == {key}
    grant = next(s for s in policy["Statement"] if "kms:CreateGrant" in s["Action"])
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert "kms:*" not in actions
    assert "kms:GenerateDataKeyWithoutPlaintext" in actions


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        ("arn:aws:iam::123456789012:role/platform-admin", "platform-admin"),
        ("arn:aws:iam::123456789012:role/ci/deploy/pulumi", "pulumi"),
        ("arn:aws-cn:iam::123456789012:role/Admin+Ops", "Admin+Ops"),
    ],
)
def test_role_name_from_arn(arn: str, name: str) -> None:
    assert iam.role_name_from_arn(arn) == name


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::123456789012:user/alice",
        "arn:aws:iam::12345:role/short-account",
        "arn:aws:sts::123456789012:assumed-role/admin/session",
        "platform-admin",
        "arn:aws:iam::123456789012:role/",
    ],
)
def test_role_name_from_arn_rejects_non_roles(arn: str) -> None:
    with pytest.raises(ValueError, match="not an IAM role ARN"):
        iam.role_name_from_arn(arn)


@pytest.mark.parametrize(
    ("instance_type", "arm"),
    [
        ("m7g.large", True),
        ("c7gn.xlarge", True),
        ("r6gd.2xlarge", True),
        ("t4g.medium", True),
        ("m6i.xlarge", False),
        ("t3.large", False),
        ("g5.xlarge", False),
        ("m7a.large", False),
        ("inf2.xlarge", False),
    ],
)
def test_is_graviton(instance_type: str, arm: bool) -> None:
    assert iam.is_graviton(instance_type) is arm


def test_node_ami_type_follows_the_architecture() -> None:
    assert iam.node_ami_type(["m6i.large", "m5.large"]) == "AL2023_x86_64_STANDARD"
    assert iam.node_ami_type(["m7g.large"]) == "AL2023_ARM_64_STANDARD"
    with pytest.raises(ValueError, match="mix ARM and x86"):
        iam.node_ami_type(["m7g.large", "m6i.large"])
    with pytest.raises(ValueError, match="empty"):
        iam.node_ami_type([])


_FAMILY = st.from_regex(r"[a-z]{1,3}[1-9][a-z]{0,2}", fullmatch=True)
_SIZE = st.sampled_from(["medium", "large", "xlarge", "4xlarge"])


@given(st.lists(st.tuples(_FAMILY, _SIZE), min_size=1, max_size=5))
def test_node_ami_type_is_arm_exactly_when_every_type_is_graviton(
    types: list[tuple[str, str]],
) -> None:
    names = [f"{family}.{size}" for family, size in types]
    arm = [iam.is_graviton(name) for name in names]
    if all(arm):
        assert iam.node_ami_type(names) == "AL2023_ARM_64_STANDARD"
    elif not any(arm):
        assert iam.node_ami_type(names) == "AL2023_x86_64_STANDARD"
    else:
        with pytest.raises(ValueError):
            iam.node_ami_type(names)


def test_region_from_arn() -> None:
    assert iam.region_from_arn("arn:aws:eks:eu-west-1:123456789012:cluster/x") == "eu-west-1"
    with pytest.raises(ValueError):
        iam.region_from_arn("arn:aws:iam::123456789012:role/x")
    with pytest.raises(ValueError):
        iam.region_from_arn("not-an-arn")


def _kubeconfig(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cluster_name": "plat-prod-eks",
        "endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "certificate_authority_data": "Q0E=",
        "region": "eu-west-1",
        **overrides,
    }
    return iam.kubeconfig_document(**fields)


def test_kubeconfig_document_authenticates_with_aws_eks_get_token() -> None:
    doc = _kubeconfig()
    assert doc["apiVersion"] == "v1"
    assert doc["kind"] == "Config"
    assert doc["current-context"] == "plat-prod-eks"
    (context,) = doc["contexts"]
    assert context["context"] == {"cluster": "plat-prod-eks", "user": "plat-prod-eks"}
    (cluster,) = doc["clusters"]
    assert cluster["cluster"] == {
        "server": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "certificate-authority-data": "Q0E=",
    }
    (user,) = doc["users"]
    assert set(user["user"]) == {"exec"}, "no static token or client key"
    exec_config = user["user"]["exec"]
    assert exec_config["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert exec_config["command"] == "aws"
    args = exec_config["args"]
    assert args[args.index("--region") + 1] == "eu-west-1"
    assert args[args.index("--cluster-name") + 1] == "plat-prod-eks"
    assert "get-token" in args
    assert "env" not in exec_config


def test_kubeconfig_document_passes_extra_env_to_the_exec_plugin() -> None:
    doc = _kubeconfig(extra_env=[("AWS_PROFILE", "platform")])
    assert doc["users"][0]["user"]["exec"]["env"] == [{"name": "AWS_PROFILE", "value": "platform"}]
