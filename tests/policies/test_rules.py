"""Each rule has a passing and a failing case, checked through the public rule signature."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.policies import ResourceView, Severity, Violation, all_rules, check_resource, rule_by_id
from tests.policies import cases
from tests.policies.cases import KEY_ARN, TAGS, changed, view

EKS = "aws:eks/cluster:Cluster"
MSK = "aws:msk/cluster:Cluster"
RDS = "aws:rds/instance:Instance"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
HELM = "kubernetes:helm.sh/v3:Release"
KMS = "aws:kms/key:Key"
EBS = "aws:ebs/volume:Volume"


def run(rule_id: str, resource: ResourceView, stack: str = "dev", peers=()) -> list[Violation]:
    return check_resource(resource, stack, peers=peers, rules=[rule_by_id(rule_id)])


# (rule, type, good-inputs builder, path to change, new value (... = remove), stack, message part)
SINGLE_RESOURCE_CASES: list[tuple[str, str, Callable[[], dict[str, Any]], str, Any, str, str]] = [
    (
        "eks-secrets-encrypted",
        EKS,
        cases.good_eks_cluster,
        "encryptionConfig",
        ...,
        "dev",
        "not encrypted with a customer KMS key",
    ),
    (
        "eks-secrets-encrypted",
        EKS,
        cases.good_eks_cluster,
        "encryptionConfig.resources",
        [],
        "dev",
        "resources=['secrets']",
    ),
    (
        "eks-endpoint-restricted",
        EKS,
        cases.good_eks_cluster,
        "vpcConfig.endpointPublicAccess",
        True,
        "dev",
        "open to 0.0.0.0/0",
    ),
    (
        "eks-endpoint-restricted",
        EKS,
        cases.good_eks_cluster,
        "vpcConfig.endpointPublicAccess",
        ...,
        "dev",
        "open to 0.0.0.0/0",
    ),
    (
        "msk-encrypted-at-rest",
        MSK,
        cases.good_msk_cluster,
        "encryptionInfo.encryptionAtRestKmsKeyArn",
        ...,
        "dev",
        "AWS-owned key",
    ),
    (
        "msk-client-tls-only",
        MSK,
        cases.good_msk_cluster,
        "encryptionInfo.encryptionInTransit.clientBroker",
        "TLS_PLAINTEXT",
        "dev",
        "TLS_PLAINTEXT, allowed: TLS only",
    ),
    (
        "msk-client-tls-only",
        MSK,
        cases.good_msk_cluster,
        "encryptionInfo.encryptionInTransit.inCluster",
        False,
        "dev",
        "broker-to-broker",
    ),
    (
        "msk-iam-auth",
        MSK,
        cases.good_msk_cluster,
        "clientAuthentication.sasl.iam",
        False,
        "dev",
        "IAM authentication is off",
    ),
    (
        "msk-iam-auth",
        MSK,
        cases.good_msk_cluster,
        "clientAuthentication.unauthenticated",
        True,
        "dev",
        "unauthenticated clients",
    ),
    (
        "rds-encrypted-at-rest",
        RDS,
        cases.good_rds_instance,
        "storageEncrypted",
        False,
        "dev",
        "not encrypted",
    ),
    (
        "rds-encrypted-at-rest",
        RDS,
        cases.good_rds_instance,
        "kmsKeyId",
        ...,
        "dev",
        "AWS-managed key",
    ),
    (
        "rds-not-public",
        RDS,
        cases.good_rds_instance,
        "publiclyAccessible",
        True,
        "dev",
        "publicly accessible",
    ),
    (
        "rds-backup-retention",
        RDS,
        cases.good_rds_instance,
        "backupRetentionPeriod",
        3.0,
        "dev",
        "3 days; allowed in dev: 7 days",
    ),
    (
        "rds-backup-retention",
        RDS,
        cases.good_rds_instance,
        "backupRetentionPeriod",
        14.0,
        "prod",
        "14 days; allowed in prod: 30 days",
    ),
    (
        "rds-deletion-protection-prod",
        RDS,
        cases.good_rds_instance,
        "deletionProtection",
        False,
        "prod",
        "no deletion protection",
    ),
    (
        "rds-deletion-protection-prod",
        RDS,
        cases.good_rds_instance,
        "skipFinalSnapshot",
        True,
        "prod",
        "without a final snapshot",
    ),
    (
        "ebs-encrypted",
        LT,
        cases.good_launch_template,
        "blockDeviceMappings.0.ebs.encrypted",
        "false",
        "dev",
        "block device /dev/xvda is not encrypted",
    ),
    (
        "ebs-encrypted",
        LT,
        cases.good_launch_template,
        "blockDeviceMappings.0.ebs.kmsKeyId",
        ...,
        "dev",
        "AWS-managed key",
    ),
    (
        "ebs-encrypted",
        LT,
        cases.good_launch_template,
        "blockDeviceMappings",
        [],
        "dev",
        "no blockDeviceMappings",
    ),
    (
        "imdsv2-required",
        LT,
        cases.good_launch_template,
        "metadataOptions.httpTokens",
        "optional",
        "dev",
        "httpTokens is optional",
    ),
    (
        "imdsv2-required",
        LT,
        cases.good_launch_template,
        "metadataOptions",
        ...,
        "dev",
        "httpTokens is not set",
    ),
    (
        "helm-release-pinned",
        HELM,
        cases.good_helm_release,
        "version",
        "^75.0.0",
        "dev",
        "version is ^75.0.0",
    ),
    (
        "helm-release-pinned",
        HELM,
        cases.good_helm_release,
        "version",
        ...,
        "dev",
        "version is not set",
    ),
    (
        "helm-release-pinned",
        HELM,
        cases.good_helm_release,
        "values.grafana.image.tag",
        "latest",
        "dev",
        "values.grafana.image: tag is 'latest'",
    ),
    (
        "helm-image-tag-explicit",
        HELM,
        cases.good_helm_release,
        "values.grafana.image.tag",
        ...,
        "dev",
        "repository 'grafana/grafana' has no tag (chart appVersion)",
    ),
    (
        "helm-release-pinned",
        HELM,
        cases.good_helm_release,
        "values.prometheus.prometheusSpec.image",
        "quay.io/prometheus/prometheus",
        "dev",
        "has no tag",
    ),
    (
        "required-tags",
        EKS,
        cases.good_eks_cluster,
        "tags.managed-by",
        ...,
        "dev",
        "missing required tags: managed-by",
    ),
    (
        "required-tags",
        RDS,
        cases.good_rds_instance,
        "tags",
        ...,
        "dev",
        "missing required tags: project, stack, managed-by",
    ),
]


@pytest.mark.parametrize(
    ("rule_id", "type_", "good", "path", "value", "stack", "message"),
    SINGLE_RESOURCE_CASES,
    ids=[f"{c[0]}:{c[3]}={c[4]!r}" for c in SINGLE_RESOURCE_CASES],
)
def test_rule_passes_good_inputs_and_fails_one_change(
    rule_id: str,
    type_: str,
    good: Callable[[], dict[str, Any]],
    path: str,
    value: Any,
    stack: str,
    message: str,
) -> None:
    assert run(rule_id, view(type_, "r", good()), stack) == []
    found = run(rule_id, view(type_, "r", changed(good(), path, value)), stack)
    assert len(found) == 1, found
    assert found[0].rule == rule_id
    assert found[0].resource == "r"
    assert message in found[0].message
    assert found[0].severity is rule_by_id(rule_id).severity


def test_eks_endpoint_may_be_public_to_listed_cidrs_only() -> None:
    limited = changed(cases.good_eks_cluster(), "vpcConfig.endpointPublicAccess", True)
    limited["vpcConfig"]["publicAccessCidrs"] = ["203.0.113.0/24"]
    assert run("eks-endpoint-restricted", view(EKS, "c", limited)) == []
    limited["vpcConfig"]["publicAccessCidrs"] = ["203.0.113.0/24", "0.0.0.0/0"]
    [found] = run("eks-endpoint-restricted", view(EKS, "c", limited))
    assert "allows 0.0.0.0/0" in found.message


def test_rds_deletion_protection_is_only_required_in_prod() -> None:
    relaxed = changed(cases.good_rds_instance(), "deletionProtection", False)
    relaxed["skipFinalSnapshot"] = True
    assert run("rds-deletion-protection-prod", view(RDS, "db", relaxed), "dev") == []
    assert len(run("rds-deletion-protection-prod", view(RDS, "db", relaxed), "prod")) == 2


def test_node_group_must_launch_from_the_template() -> None:
    group_type = "aws:eks/nodeGroup:NodeGroup"
    group = {"clusterName": "c", "launchTemplate": {"id": "lt-1", "version": "1"}}
    assert run("ebs-encrypted", view(group_type, "ng", group)) == []
    [found] = run("ebs-encrypted", view(group_type, "ng", {"clusterName": "c", "diskSize": 50.0}))
    assert found.message.startswith("node group has no launchTemplate")


def test_ebs_volume_needs_customer_key() -> None:
    volume = {"availabilityZone": "eu-west-1a", "size": 10.0, "encrypted": True}
    [found] = run("ebs-encrypted", view(EBS, "v", volume))
    assert "AWS-managed key" in found.message
    assert run("ebs-encrypted", view(EBS, "v", {**volume, "kmsKeyId": KEY_ARN})) == []


def test_helm_image_digest_counts_as_pinned() -> None:
    release = cases.good_helm_release()
    release["values"]["sidecar"] = {"image": "ghcr.io/x/y@sha256:" + "a" * 64}
    release["values"]["other"] = {"image": {"repository": "x/y", "digest": "sha256:" + "b" * 64}}
    assert run("helm-release-pinned", view(HELM, "h", release)) == []


def test_workload_images_pinned() -> None:
    deployment = {
        "metadata": {"name": "events-api"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "repo/app:1.0"}]}}},
    }
    type_ = "kubernetes:apps/v1:Deployment"
    assert run("images-pinned", view(type_, "d", deployment)) == []
    bad = changed(deployment, "spec.template.spec.containers.0.image", "repo/app:latest")
    [found] = run("images-pinned", view(type_, "d", bad))
    assert found.message == "container app image 'repo/app:latest' uses the tag 'latest'"


def test_kms_rotation_is_advisory() -> None:
    assert run("kms-key-rotation", view(KMS, "k", {"enableKeyRotation": True})) == []
    [found] = run("kms-key-rotation", view(KMS, "k", {"description": "x"}))
    assert found.severity is Severity.ADVISORY
    assert "enableKeyRotation=true" in found.message
    asymmetric = {"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"}
    assert run("kms-key-rotation", view(KMS, "k", asymmetric)) == []


def test_registry_ids_are_unique_and_described() -> None:
    rules = all_rules()
    assert len({r.id for r in rules}) == len(rules)
    assert all(
        r.description and r.severity in (Severity.MANDATORY, Severity.ADVISORY) for r in rules
    )


def test_every_rule_has_a_failing_case_in_this_suite() -> None:
    """Guards the 'each rule has a passing and a failing case' promise as rules are added."""
    import inspect
    import sys

    from tests.policies import test_cross_resource_rules

    sources = inspect.getsource(test_cross_resource_rules) + inspect.getsource(
        sys.modules[__name__]
    )
    covered = {case[0] for case in SINGLE_RESOURCE_CASES}
    covered |= {r.id for r in all_rules() if f'"{r.id}"' in sources}
    missing = sorted({r.id for r in all_rules()} - covered)
    assert not missing, f"rules without a test case: {missing}"


def test_tags_accepted_from_provider_default_tags() -> None:
    provider = view(
        "pulumi:providers:aws",
        "aws-eu",
        {
            "region": "eu-west-1",
            "defaultTags": '{"tags": {"project": "platform", "stack": "dev", '
            '"managed-by": "pulumi"}}',
        },
    )
    key = view(KMS, "k", {"enableKeyRotation": True}, provider=f"{provider.urn}::id-1")
    assert run("required-tags", key, peers=[provider, key]) == []
    [found] = run("required-tags", key, peers=[key])
    assert found.message == "missing required tags: project, stack, managed-by"


def test_untaggable_types_are_not_asked_for_tags() -> None:
    route = view("aws:ec2/route:Route", "r", {"destinationCidrBlock": "0.0.0.0/0"})
    policy = view("aws:iam/rolePolicy:RolePolicy", "p", {"role": "x", "policy": "{}"})
    assert run("required-tags", route) == []
    assert run("required-tags", policy) == []
    [found] = run("required-tags", view("aws:ec2/subnet:Subnet", "s", {"tags": {"Name": "s"}}))
    assert "project" in found.message


def test_tags_given_as_a_key_value_list() -> None:
    group = view(
        "aws:autoscaling/group:Group",
        "asg",
        {"tags": [{"key": k, "value": v, "propagateAtLaunch": True} for k, v in TAGS.items()]},
    )
    assert run("required-tags", group) == []


# --- Cluster add-ons (issue 13) -----------------------------------------------------------------

CLUSTER_ARN = "arn:aws:eks:eu-west-1:123456789012:cluster/plat-dev-eks"


def _pod_identity_role(condition: dict[str, Any] | None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }
    if condition is not None:
        statement["Condition"] = condition
    return {"assumeRolePolicy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})}


def test_pod_identity_trust_needs_account_and_cluster_conditions() -> None:
    from infra.cluster.iam import pod_identity_trust_policy

    good = {"assumeRolePolicy": json.dumps(pod_identity_trust_policy(CLUSTER_ARN))}
    assert run("pod-identity-trust-scoped", view("aws:iam/role:Role", "r", good), "dev") == []
    found = run(
        "pod-identity-trust-scoped", view("aws:iam/role:Role", "r", _pod_identity_role(None)), "dev"
    )
    assert [v.message for v in found] == [
        "trust statement #0 has no aws:SourceAccount condition; any cluster could use it",
        "trust statement #0 has no aws:SourceArn condition; any cluster could use it",
    ]
    account_only = _pod_identity_role({"StringEquals": {"aws:SourceAccount": "123456789012"}})
    found = run("pod-identity-trust-scoped", view("aws:iam/role:Role", "r", account_only), "dev")
    assert len(found) == 1 and "aws:SourceArn" in found[0].message


def test_vpc_cni_must_enable_network_policy() -> None:
    addon = "aws:eks/addon:Addon"
    good = {"addonName": "vpc-cni", "configurationValues": '{"enableNetworkPolicy": "true"}'}
    assert run("vpc-cni-network-policy", view(addon, "cni", good), "dev") == []
    found = run("vpc-cni-network-policy", view(addon, "cni", {"addonName": "vpc-cni"}), "dev")
    assert len(found) == 1 and "would not be enforced" in found[0].message
    other = {"addonName": "coredns"}
    assert run("vpc-cni-network-policy", view(addon, "dns", other), "dev") == []


def test_ebs_storage_class_is_encrypted_with_a_key_and_zonal() -> None:
    kind = "kubernetes:storage.k8s.io/v1:StorageClass"
    good = {
        "provisioner": "ebs.csi.aws.com",
        "parameters": {"type": "gp3", "encrypted": "true", "kmsKeyId": KEY_ARN},
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    assert run("storage-class-encrypted", view(kind, "sc", good), "dev") == []
    bad = {**good, "parameters": {"type": "gp3"}, "volumeBindingMode": "Immediate"}
    messages = [v.message for v in run("storage-class-encrypted", view(kind, "sc", bad), "dev")]
    assert len(messages) == 3 and "kmsKeyId is not set" in messages[1]


def test_ingress_class_params_fix_certificate_policy_and_cidrs() -> None:
    kind = "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams"
    good = {
        "spec": {
            "certificateArn": ["arn:aws:acm:eu-west-1:123456789012:certificate/x"],
            "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "inboundCIDRs": ["203.0.113.0/24"],
        }
    }
    assert run("ingress-class-https-only", view(kind, "alb", good), "dev") == []
    found = run("ingress-class-https-only", view(kind, "alb", {"spec": {}}), "dev")
    assert [v.message.split(" ")[0] for v in found] == [
        "spec.certificateArn",
        "spec.sslPolicy",
        "spec.inboundCIDRs",
    ]
