"""EksCluster alone, under the recording mocks: the security properties on what it declares.

The args come from the committed dev and prod stack files, so a config change that weakens a
property fails here too. dev opens the public endpoint to one office CIDR; prod keeps it closed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from infra.cluster import EksCluster, EksClusterArgs
from infra.cluster.eks import REQUIRED_ADDONS
from infra.config import PlatformConfig, load_stack_file
from platform_cli.offline import SECRET_MARKER, Declared, DeclaredResource, run_program
from tests.infra.taggable import assert_tagged

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SECRETS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/secrets"
EBS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/ebs"
LOGS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/logs"
SUBNETS = ["subnet-private-a", "subnet-private-b", "subnet-private-c"]
ADMINS = (
    f"arn:aws:iam::{ACCOUNT}:role/platform-admin",
    f"arn:aws:iam::{ACCOUNT}:role/ci/pulumi-deployer",
)

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ADDON = "aws:eks/addon:Addon"
ROLE = "aws:iam/role:Role"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
K8S_PROVIDER = "pulumi:providers:kubernetes"


def make_args(cfg: PlatformConfig, **overrides: Any) -> EksClusterArgs:
    args = EksClusterArgs(
        cluster_name=f"{cfg.name_prefix}-eks",
        version=cfg.cluster.version,
        addon_versions=cfg.cluster.addon_versions,
        node_groups=cfg.cluster.node_groups,
        public_access_cidrs=cfg.cluster.public_access_cidrs,
        admin_role_arns=ADMINS,
        vpc_id="vpc-0123",
        private_subnet_ids=SUBNETS[: cfg.network.az_count],
        secrets_kms_key_arn=SECRETS_KEY,
        ebs_kms_key_arn=EBS_KEY,
        log_retention_days=90,
        logs_kms_key_arn=LOGS_KEY,
        tags={**cfg.base_tags, **cfg.tags},
        protect=cfg.protection.protect_resources,
    )
    return dataclasses.replace(args, **overrides)


def declare(cfg: PlatformConfig, **overrides: Any) -> Declared:
    def program() -> None:
        aws_provider = aws.Provider("aws", region=REGION)
        eks = EksCluster(
            "eks",
            make_args(cfg, **overrides),
            opts=pulumi.ResourceOptions(providers=[aws_provider]),
        )
        pulumi.export("kubeconfig", eks.kubeconfig)
        pulumi.export("kubeconfig_plain", pulumi.Output.unsecret(eks.kubeconfig))
        pulumi.export("oidc_issuer_url", eks.oidc_issuer_url)
        pulumi.export("provider_urn", eks.provider.urn)

    return run_program(program, stack=cfg.stack, region=REGION)


@pytest.fixture(scope="module")
def dev_cfg() -> PlatformConfig:
    return load_stack_file("dev")


@pytest.fixture(scope="module")
def prod_cfg() -> PlatformConfig:
    return load_stack_file("prod")


@pytest.fixture(scope="module")
def dev(dev_cfg: PlatformConfig) -> Declared:
    return declare(dev_cfg)


@pytest.fixture(scope="module")
def prod(prod_cfg: PlatformConfig) -> Declared:
    return declare(prod_cfg)


@pytest.fixture(params=["dev", "prod"])
def any_env(request: pytest.FixtureRequest) -> Declared:
    declared: Declared = request.getfixturevalue(request.param)
    return declared


@pytest.fixture(params=["dev", "prod"])
def any_env_and_cfg(request: pytest.FixtureRequest) -> tuple[Declared, PlatformConfig]:
    """dev and prod, each with the stack config it was declared from."""
    declared: Declared = request.getfixturevalue(request.param)
    cfg: PlatformConfig = request.getfixturevalue(f"{request.param}_cfg")
    return declared, cfg


def _cluster(declared: Declared) -> DeclaredResource:
    return declared.one(CLUSTER)


# --- control plane --------------------------------------------------------------------------


def test_secrets_are_envelope_encrypted_with_the_customer_key(any_env: Declared) -> None:
    encryption = _cluster(any_env).inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    assert encryption["provider"]["keyArn"] == SECRETS_KEY


def test_private_endpoint_is_always_on(any_env: Declared) -> None:
    assert _cluster(any_env).inputs["vpcConfig"]["endpointPrivateAccess"] is True


def test_prod_closes_the_public_endpoint(prod: Declared) -> None:
    vpc = _cluster(prod).inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc


def test_dev_opens_the_public_endpoint_only_to_configured_cidrs(
    dev: Declared, dev_cfg: PlatformConfig
) -> None:
    vpc = _cluster(dev).inputs["vpcConfig"]
    assert dev_cfg.cluster.public_access_cidrs, "dev stack is expected to configure an office CIDR"
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == list(dev_cfg.cluster.public_access_cidrs)
    assert "0.0.0.0/0" not in vpc["publicAccessCidrs"]


def test_control_plane_runs_in_the_private_subnets_with_its_own_sg(dev: Declared) -> None:
    vpc = _cluster(dev).inputs["vpcConfig"]
    assert vpc["subnetIds"] == SUBNETS[:2]
    cluster_sg = dev.one("aws:ec2/securityGroup:SecurityGroup", "-cluster-sg")
    assert [sg.startswith(f"{cluster_sg.name}-") for sg in vpc["securityGroupIds"]] == [True]


def test_every_control_plane_log_type_goes_to_a_retained_encrypted_group(
    any_env: Declared,
) -> None:
    cluster = _cluster(any_env)
    assert set(cluster.inputs["enabledClusterLogTypes"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    log_group = any_env.one("aws:cloudwatch/logGroup:LogGroup")
    assert log_group.inputs["name"] == f"/aws/eks/{cluster.inputs['name']}/cluster"
    assert log_group.inputs["retentionInDays"] == 90
    assert log_group.inputs["kmsKeyId"] == LOGS_KEY
    # Created first, or EKS creates the group itself with infinite retention.
    assert any_env.depends_on(cluster, log_group)


def test_cluster_role_trusts_eks_and_has_the_cluster_policy(dev: Declared) -> None:
    role = dev.one(ROLE, "-cluster-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "eks.amazonaws.com"}
    attachments = [
        r.inputs["policyArn"]
        for r in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.name.startswith(f"{role.name}-")
    ]
    assert attachments == ["arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"]


def test_prod_protects_the_control_plane_and_dev_does_not(prod: Declared, dev: Declared) -> None:
    assert _cluster(prod).protect is True
    assert _cluster(prod).inputs["deletionProtection"] is True
    assert prod.one("aws:cloudwatch/logGroup:LogGroup").protect is True
    assert _cluster(dev).protect is False
    assert _cluster(dev).inputs["deletionProtection"] is False


# --- access ---------------------------------------------------------------------------------


def test_authentication_uses_access_entries_not_the_aws_auth_configmap(any_env: Declared) -> None:
    access = _cluster(any_env).inputs["accessConfig"]
    assert access["authenticationMode"] == "API"
    assert access["bootstrapClusterCreatorAdminPermissions"] is False
    config_maps = [
        r for r in any_env.resources if r.type.startswith("kubernetes:core/v1:ConfigMap")
    ]
    assert not any(r.inputs.get("metadata", {}).get("name") == "aws-auth" for r in config_maps)
    assert config_maps == []


def test_each_admin_role_gets_an_access_entry_and_cluster_admin(any_env: Declared) -> None:
    entries = any_env.of_type("aws:eks/accessEntry:AccessEntry")
    assert sorted(e.inputs["principalArn"] for e in entries) == sorted(ADMINS)
    assert all(e.inputs["type"] == "STANDARD" for e in entries)
    associations = any_env.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert sorted(a.inputs["principalArn"] for a in associations) == sorted(ADMINS)
    for association in associations:
        assert association.inputs["policyArn"] == (
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
        )
        assert association.inputs["accessScope"] == {"type": "cluster"}
        entry = next(
            e for e in entries if e.inputs["principalArn"] == association.inputs["principalArn"]
        )
        assert any_env.depends_on(association, entry)


# --- nodes ----------------------------------------------------------------------------------


def test_launch_template_requires_imdsv2_with_hop_limit_one(any_env: Declared) -> None:
    for template in any_env.of_type(LAUNCH_TEMPLATE):
        metadata = template.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required"
        assert metadata["httpPutResponseHopLimit"] == 1


def test_root_volume_is_encrypted_gp3_with_the_ebs_key_and_configured_size(
    any_env_and_cfg: tuple[Declared, PlatformConfig],
) -> None:
    declared, cfg = any_env_and_cfg
    for group in cfg.cluster.node_groups:
        template = declared.one(LAUNCH_TEMPLATE, f"-{group.name}-lt")
        (mapping,) = template.inputs["blockDeviceMappings"]
        assert mapping["deviceName"] == "/dev/xvda"
        ebs = mapping["ebs"]
        assert ebs["encrypted"] == "true"
        assert ebs["volumeType"] == "gp3"
        assert ebs["kmsKeyId"] == EBS_KEY
        assert ebs["volumeSize"] == group.disk_size_gib


def test_instances_volumes_and_enis_are_tagged_through_the_template(any_env: Declared) -> None:
    for template in any_env.of_type(LAUNCH_TEMPLATE):
        specs = {s["resourceType"]: s["tags"] for s in template.inputs["tagSpecifications"]}
        assert set(specs) == {"instance", "volume", "network-interface"}
        for tags in specs.values():
            assert {"project", "stack", "managed-by"} <= set(tags)


def test_every_node_group_uses_its_launch_template_and_the_private_subnets(
    any_env_and_cfg: tuple[Declared, PlatformConfig],
) -> None:
    declared, cfg = any_env_and_cfg
    groups = declared.of_type(NODE_GROUP)
    assert len(groups) == len(cfg.cluster.node_groups)
    node_sg = declared.one("aws:ec2/securityGroup:SecurityGroup", "-node-sg")
    for group_cfg in cfg.cluster.node_groups:
        group = declared.one(NODE_GROUP, f"-{group_cfg.name}")
        template = declared.one(LAUNCH_TEMPLATE, f"-{group_cfg.name}-lt")
        assert group.inputs["launchTemplate"]["id"].startswith(f"{template.name}-")
        assert template.urn in group.property_dependencies["launchTemplate"]
        assert "diskSize" not in group.inputs, "disk size belongs in the launch template"
        assert group.inputs["subnetIds"] == SUBNETS[: cfg.network.az_count]
        assert group.inputs["instanceTypes"] == list(group_cfg.instance_types)
        assert group.inputs["capacityType"] == group_cfg.capacity_type
        assert group.inputs["amiType"].startswith("AL2023_")
        assert group.inputs["version"] == cfg.cluster.version
        assert group.inputs["scalingConfig"] == {
            "minSize": group_cfg.min_size,
            "maxSize": group_cfg.max_size,
            "desiredSize": group_cfg.desired_size,
        }
        assert group.inputs["updateConfig"] == {"maxUnavailable": 1}
        assert [
            sg.startswith(f"{node_sg.name}-") for sg in template.inputs["vpcSecurityGroupIds"]
        ] == [True]


def test_node_role_has_worker_cni_and_ecr_read_policies(dev: Declared) -> None:
    role = dev.one(ROLE, "-node-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {
        r.inputs["policyArn"].rsplit("/", 1)[-1]
        for r in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if r.name.startswith(f"{role.name}-")
    }
    assert attached == {
        "AmazonEKSWorkerNodePolicy",
        "AmazonEKS_CNI_Policy",
        "AmazonEC2ContainerRegistryReadOnly",
    }
    group = dev.one(NODE_GROUP)
    assert group.inputs["nodeRoleArn"].endswith(role.name)


def test_no_security_group_admits_the_internet(any_env: Declared) -> None:
    rules = any_env.of_type(INGRESS_RULE)
    assert rules, "the cluster is expected to declare its ingress rules"
    for rule in rules:
        assert rule.inputs.get("cidrIpv4") not in ("0.0.0.0/0",)
        assert rule.inputs.get("cidrIpv6") not in ("::/0",)
        # Every ingress names a peer security group of this cluster.
        assert rule.inputs["referencedSecurityGroupId"].startswith("eks-")
    for group in any_env.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for inline in group.inputs.get("ingress") or []:
            assert "0.0.0.0/0" not in (inline.get("cidrBlocks") or [])
    assert not any_env.of_type("aws:ec2/securityGroupRule:SecurityGroupRule")


# --- add-ons --------------------------------------------------------------------------------


def test_addons_are_pinned_to_the_configured_versions(
    any_env_and_cfg: tuple[Declared, PlatformConfig],
) -> None:
    declared, cfg = any_env_and_cfg
    addons = {a.inputs["addonName"]: a for a in declared.of_type(ADDON)}
    assert set(addons) == set(REQUIRED_ADDONS)
    assert "eks-pod-identity-agent" in addons
    for name, addon in addons.items():
        assert addon.inputs["addonVersion"] == cfg.cluster.addon_versions[name]
        assert addon.inputs["resolveConflictsOnUpdate"] == "OVERWRITE"
        assert addon.inputs["clusterName"] == _cluster(declared).inputs["name"]


def test_addons_that_need_nodes_wait_for_them_and_nodes_wait_for_the_cni(dev: Declared) -> None:
    addons = {a.inputs["addonName"]: a for a in dev.of_type(ADDON)}
    group = dev.one(NODE_GROUP)
    for name in ("coredns", "aws-ebs-csi-driver"):
        assert dev.depends_on(addons[name], group), name
    for name in ("vpc-cni", "kube-proxy", "eks-pod-identity-agent"):
        assert dev.depends_on(group, addons[name]), name
        assert not dev.depends_on(addons[name], group), name


def test_ebs_csi_driver_gets_its_role_through_pod_identity(dev: Declared) -> None:
    association = dev.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert association.inputs["namespace"] == "kube-system"
    assert association.inputs["serviceAccount"] == "ebs-csi-controller-sa"
    role = dev.one(ROLE, "-ebs-csi-role")
    assert association.inputs["roleArn"].endswith(role.name)
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert set(statement["Action"]) == {"sts:AssumeRole", "sts:TagSession"}
    kms = json.loads(dev.one("aws:iam/rolePolicy:RolePolicy", "-ebs-csi-kms").inputs["policy"])
    assert {s["Resource"] for s in kms["Statement"]} == {EBS_KEY}
    ebs_addon = next(a for a in dev.of_type(ADDON) if a.inputs["addonName"] == "aws-ebs-csi-driver")
    assert dev.depends_on(ebs_addon, association)


# --- outputs and provider -------------------------------------------------------------------


def test_kubernetes_provider_is_a_child_of_the_cluster_with_ssa(any_env: Declared) -> None:
    (provider,) = any_env.of_type(K8S_PROVIDER)
    component = any_env.one("platform:cluster:EksCluster")
    assert provider.parent == component.urn
    assert provider.inputs["enableServerSideApply"] in (True, "true")
    # The kubeconfig reaches the provider as a secret.
    assert provider.inputs["kubeconfig"] == SECRET_MARKER
    assert any_env.outputs["provider_urn"] == provider.urn
    for group in any_env.of_type(NODE_GROUP):
        assert any_env.depends_on(provider, group)
    for association in any_env.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        assert any_env.depends_on(provider, association)


def test_kubeconfig_is_secret_and_uses_aws_eks_get_token(dev: Declared) -> None:
    assert dev.outputs["kubeconfig"] == SECRET_MARKER
    document = json.loads(dev.outputs["kubeconfig_plain"])
    cluster_name = _cluster(dev).inputs["name"]
    assert document["current-context"] == cluster_name
    (cluster,) = document["clusters"]
    assert cluster["cluster"]["server"].startswith("https://")
    assert cluster["cluster"]["certificate-authority-data"]
    (user,) = document["users"]
    assert "token" not in user["user"]
    exec_config = user["user"]["exec"]
    assert exec_config["command"] == "aws"
    assert exec_config["args"] == (
        f"--region {REGION} eks get-token --cluster-name {cluster_name} --output json".split()
    )


def test_register_outputs_lists_every_public_output(dev: Declared) -> None:
    component = dev.one("platform:cluster:EksCluster")
    assert set(dev.component_outputs[component.urn]) == {
        "cluster_name",
        "cluster_arn",
        "endpoint",
        "certificate_authority",
        "oidc_issuer_url",
        "cluster_security_group_id",
        "node_security_group_id",
        "node_role_arn",
        "kubeconfig",
        "provider",
    }
    assert dev.outputs["oidc_issuer_url"].startswith("https://oidc.eks.")


def test_every_aws_child_is_parented_and_uses_the_callers_provider(any_env: Declared) -> None:
    component = any_env.one("platform:cluster:EksCluster")
    aws_provider = any_env.one("pulumi:providers:aws")
    children = [r for r in any_env.resources if r.type.startswith("aws:")]
    assert len(children) > 20
    for child in children:
        assert child.parent == component.urn, child.name
        assert child.provider is not None and child.provider.startswith(aws_provider.urn), (
            child.name
        )


def test_every_taggable_resource_carries_the_base_tags(any_env: Declared) -> None:
    checked = assert_tagged(any_env)
    assert checked >= 15
    for resource in any_env.of_type(CLUSTER) + any_env.of_type(NODE_GROUP):
        assert resource.inputs["tags"]["team"] == "platform", "user tags are kept"


def test_node_security_group_is_discoverable_by_the_cluster_tag(dev: Declared) -> None:
    node_sg = dev.one("aws:ec2/securityGroup:SecurityGroup", "-node-sg")
    name = _cluster(dev).inputs["name"]
    assert node_sg.inputs["tags"][f"kubernetes.io/cluster/{name}"] == "owned"


def test_arm_node_groups_get_the_arm_ami(dev_cfg: PlatformConfig) -> None:
    arm_group = dev_cfg.cluster.node_groups[0].model_copy(
        update={"name": "arm", "instance_types": ("m7g.large", "c7g.large")}
    )
    declared = declare(dev_cfg, node_groups=(arm_group,))
    assert declared.one(NODE_GROUP).inputs["amiType"] == "AL2023_ARM_64_STANDARD"


# --- argument validation --------------------------------------------------------------------


def _ng(cfg: PlatformConfig, **update: Any) -> tuple[Any, ...]:
    return (cfg.cluster.node_groups[0].model_copy(update=update),)


INVALID: list[tuple[str, Callable[[PlatformConfig], dict[str, Any]], tuple[str, ...]]] = [
    ("cluster_name", lambda c: {"cluster_name": "-bad name"}, ("cluster_name", "'-bad name'")),
    ("version", lambda c: {"version": "1.20"}, ("version", "'1.20'", "1.32")),
    (
        "addon missing",
        lambda c: {"addon_versions": {"vpc-cni": "v1.19.2-eksbuild.5"}},
        ("addon_versions", "missing", "coredns"),
    ),
    (
        "addon unpinned",
        lambda c: {"addon_versions": {**c.cluster.addon_versions, "coredns": "latest"}},
        ("addon_versions['coredns']", "'latest'", "vX.Y.Z-eksbuild.N"),
    ),
    (
        "addon unknown",
        lambda c: {
            "addon_versions": {**c.cluster.addon_versions, "karpenter": "v1.0.0-eksbuild.1"}
        },
        ("addon_versions", "unknown ['karpenter']"),
    ),
    ("no node groups", lambda c: {"node_groups": ()}, ("node_groups", "empty")),
    (
        "duplicate node groups",
        lambda c: {"node_groups": c.cluster.node_groups * 2},
        ("node_groups", "repeat"),
    ),
    (
        "mixed architectures",
        lambda c: {"node_groups": _ng(c, instance_types=("m6i.large", "m7g.large"))},
        ("node_groups['general']", "mix ARM and x86"),
    ),
    (
        "public internet",
        lambda c: {"public_access_cidrs": ("0.0.0.0/0",)},
        ("public_access_cidrs", "'0.0.0.0/0'", "internet"),
    ),
    (
        "malformed cidr",
        lambda c: {"public_access_cidrs": ("10.0.0.1/24",)},
        ("public_access_cidrs", "'10.0.0.1/24'", "not a CIDR"),
    ),
    (
        "admin not a role",
        lambda c: {"admin_role_arns": (f"arn:aws:iam::{ACCOUNT}:user/alice",)},
        ("admin_role_arns", "user/alice", "role/<name>"),
    ),
    (
        "admin twice",
        lambda c: {"admin_role_arns": (ADMINS[0], ADMINS[0])},
        ("admin_role_arns", "repeat"),
    ),
    (
        "log retention",
        lambda c: {"log_retention_days": 10},
        ("log_retention_days", "10", "14"),
    ),
    ("tags without base", lambda c: {"tags": {"team": "x"}}, ("tags", "'project'")),
]


@pytest.mark.parametrize(
    ("case", "overrides", "fragments"), INVALID, ids=[case for case, _, _ in INVALID]
)
def test_invalid_args_fail_naming_the_field_before_any_resource(
    case: str,
    overrides: Callable[[PlatformConfig], dict[str, Any]],
    fragments: tuple[str, ...],
    dev_cfg: PlatformConfig,
) -> None:
    errors: list[str] = []

    def program() -> None:
        try:
            EksCluster("eks", make_args(dev_cfg, **overrides(dev_cfg)))
        except ValueError as exc:
            errors.append(str(exc))

    declared = run_program(program, stack="dev", region=REGION)
    assert len(errors) == 1, f"{case}: expected a ValueError"
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"
    assert declared.resources == [], "validation must run before any resource is declared"
