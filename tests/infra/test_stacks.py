"""Every stack runs the whole program under mocks; prod/dev differences are asserted."""

from __future__ import annotations

import json
from functools import cache

import pytest

from infra.config import REPO_ROOT, load_stack_file, read_stack_file
from infra.contracts import ENVIRONMENTS, REQUIRED_TAG_KEYS
from infra.program import LOCALSTACK_SERVICES
from platform_cli.offline import Declared, run_program, run_stack


@cache
def declared(stack: str) -> Declared:
    return run_stack(load_stack_file(stack))


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_stack_evaluates_and_exports(stack: str) -> None:
    result = declared(stack)
    assert len(result.resources) > 40
    for key in ("vpcId", "privateSubnetIds", "isolatedSubnetIds", "auditArchiveBucket"):
        assert result.outputs[key], key


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_every_aws_resource_uses_the_explicit_provider(stack: str) -> None:
    result = declared(stack)
    provider = result.one("pulumi:providers:aws")
    for resource in result.resources:
        if resource.custom and resource.type.startswith("aws:"):
            assert resource.provider and resource.provider.startswith(provider.urn), resource.name


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_required_tags_everywhere(stack: str) -> None:
    for resource in declared(stack).resources:
        if resource.custom and "tags" in resource.inputs:
            tags = resource.inputs["tags"]
            assert all(k in tags for k in REQUIRED_TAG_KEYS), resource.name
            assert tags["stack"] == stack


def test_prod_and_dev_differ_where_they_should() -> None:
    prod, dev = declared("prod"), declared("dev")
    assert len(prod.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len(dev.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len(prod.of_type("aws:ec2/subnet:Subnet")) == 9
    assert len(dev.of_type("aws:ec2/subnet:Subnet")) == 6
    assert all(k.protect for k in prod.of_type("aws:kms/key:Key"))
    assert not any(k.protect for k in dev.of_type("aws:kms/key:Key"))
    assert prod.one("aws:s3/bucket:Bucket").protect is True
    assert dev.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is True
    assert all(k.inputs["deletionWindowInDays"] == 30 for k in prod.of_type("aws:kms/key:Key"))


def test_localstack_provider_points_at_localstack() -> None:
    result = declared("localstack")
    provider = result.one("pulumi:providers:aws").inputs
    endpoint = read_stack_file("localstack")["platform:localstack"]["endpoint"]
    endpoints = (
        json.loads(provider["endpoints"])
        if isinstance(provider["endpoints"], str)
        else provider["endpoints"]
    )
    assert endpoints[0] == dict.fromkeys(LOCALSTACK_SERVICES, endpoint)
    for flag in (
        "skipCredentialsValidation",
        "skipMetadataApiCheck",
        "skipRequestingAccountId",
        "s3UsePathStyle",
    ):
        assert provider[flag] in (True, "true"), flag


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_cloud_stacks_use_the_default_aws_endpoints(stack: str) -> None:
    provider = declared(stack).one("pulumi:providers:aws").inputs
    assert "endpoints" not in provider
    assert provider["region"] == "eu-west-1"


def test_localstack_declares_only_what_its_free_edition_emulates() -> None:
    emulated = {"ec2", "kms", "s3", "iam", "cloudwatch", "secretsmanager", "sts", "logs"}
    for resource in declared("localstack").resources:
        if resource.custom and resource.type.startswith("aws:"):
            service = resource.type.split(":")[1].split("/")[0]
            assert service in emulated, f"{resource.type} is not emulated by LocalStack"


def test_load_from_pulumi_reads_the_same_config() -> None:
    """The `pulumi up` path (pulumi.Config) yields the same typed config as the stack file."""
    from infra.config import load_from_pulumi

    raw = read_stack_file("staging")
    config = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in raw.items()}
    seen = []
    run_program(
        lambda: seen.append(load_from_pulumi()), stack="staging", region="eu-west-1", config=config
    )
    assert seen == [load_stack_file("staging")]


def test_mixed_modes_fail_in_config_before_any_resource() -> None:
    """dev with eks / in-cluster Kafka / rds: `pulumi up` stops at config, nothing registered."""
    from infra.config import ConfigError, load_from_pulumi
    from infra.program import build

    raw = read_stack_file("dev")
    raw["platform:kafka"] = {**raw["platform:kafka"], "mode": "in-cluster"}
    config = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in raw.items()}
    errors: list[str] = []

    def program() -> None:
        try:
            build(load_from_pulumi())
        except ConfigError as exc:
            errors.append(str(exc))

    result = run_program(program, stack="dev", region="eu-west-1", config=config)
    assert errors and "platform:kafka.mode: 'in-cluster'" in errors[0]
    assert "allowed: 'msk'" in errors[0]
    assert result.resources == []


def _ingress_cidrs(result: Declared) -> list[str]:
    cidrs: list[str] = []
    for sg in result.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in sg.inputs.get("ingress", []):
            cidrs += rule.get("cidrBlocks", []) + rule.get("ipv6CidrBlocks", [])
    for rule in result.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        cidrs += [rule.inputs.get("cidrIpv4", ""), rule.inputs.get("cidrIpv6", "")]
    for rule in result.of_type("aws:ec2/securityGroupRule:SecurityGroupRule"):
        if rule.inputs.get("type") == "ingress":
            cidrs += rule.inputs.get("cidrBlocks", []) + rule.inputs.get("ipv6CidrBlocks", [])
    return [c for c in cidrs if c]


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_no_security_group_ingress_from_the_internet(stack: str) -> None:
    cidrs = _ingress_cidrs(declared(stack))
    assert "0.0.0.0/0" not in cidrs and "::/0" not in cidrs


@pytest.mark.parametrize(
    ("stack", "protected", "brokers"),
    [("prod", True, 3), ("dev", False, 2)],
)
def test_prod_data_layer_is_protected_and_redundant_and_dev_can_be_torn_down(
    stack: str, protected: bool, brokers: int
) -> None:
    d = declared(stack)
    rds = d.one("aws:rds/instance:Instance")
    assert rds.protect is protected
    assert rds.inputs["multiAz"] is protected
    assert rds.inputs["deletionProtection"] is protected
    assert rds.inputs["skipFinalSnapshot"] is not protected
    msk = d.one("aws:msk/cluster:Cluster")
    assert msk.inputs["numberOfBrokerNodes"] == brokers


def test_prod_keeps_backups_a_month_private_and_across_three_brokers() -> None:
    prod = declared("prod")
    rds = prod.one("aws:rds/instance:Instance")
    assert rds.inputs["backupRetentionPeriod"] == 30
    assert rds.inputs["publiclyAccessible"] is False
    msk = prod.one("aws:msk/cluster:Cluster")
    assert msk.protect is True
    assert len(msk.inputs["brokerNodeGroupInfo"]["clientSubnets"]) == 3


def test_database_in_isolated_and_brokers_in_private_subnets() -> None:
    prod = declared("prod")
    subnets: dict[str, list[str]] = {"public": [], "private": [], "isolated": []}
    for subnet in prod.of_type("aws:ec2/subnet:Subnet"):
        subnets[subnet.inputs["tags"]["tier"]].append(subnet.name)
    group = prod.one("aws:rds/subnetGroup:SubnetGroup")
    assert sorted(i.rsplit("-", 1)[0] for i in group.inputs["subnetIds"]) == sorted(
        subnets["isolated"]
    )
    brokers = prod.one("aws:msk/cluster:Cluster").inputs["brokerNodeGroupInfo"]["clientSubnets"]
    assert sorted(i.rsplit("-", 1)[0] for i in brokers) == sorted(subnets["private"])


def test_prod_api_endpoint_private_only_dev_cidr_limited() -> None:
    prod_vpc = declared("prod").one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    dev_vpc = declared("dev").one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert prod_vpc["endpointPrivateAccess"] is True
    assert prod_vpc["endpointPublicAccess"] is False
    assert dev_vpc["endpointPublicAccess"] is True
    assert dev_vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_localstack_has_no_eks_msk_rds_or_ecr() -> None:
    types = {r.type for r in declared("localstack").resources}
    for forbidden in (
        "aws:eks/cluster:Cluster",
        "aws:msk/cluster:Cluster",
        "aws:rds/instance:Instance",
        "aws:ecr/repository:Repository",
    ):
        assert forbidden not in types
    assert "platform:cluster:KubeconfigCluster" in types


def test_kubeconfig_export_is_secret() -> None:
    assert declared("prod").outputs["kubeconfig"] == "[secret]"


def _custom_resources(result: Declared, kind: str) -> list[dict]:
    return [r.inputs for r in result.of_type(f"kubernetes:{_API_VERSIONS[kind]}:{kind}")]


_API_VERSIONS = {
    "Application": "argoproj.io/v1alpha1",
    "Kafka": "kafka.strimzi.io/v1beta2",
    "Cluster": "postgresql.cnpg.io/v1",
}


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_whole_program_points_argocd_at_the_stack_folder(stack: str) -> None:
    result = declared(stack)
    apps = _custom_resources(result, "Application")
    assert [a["spec"]["source"]["path"] for a in apps] == [f"gitops/{stack}"]
    assert result.outputs["rootApplication"]


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_whole_program_writes_every_fact(stack: str) -> None:
    from infra.contracts import FACTS_CONFIGMAP, Fact

    maps = [
        r.inputs
        for r in declared(stack).of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs["metadata"]["name"] == FACTS_CONFIGMAP
    ]
    assert len(maps) == 1
    assert set(maps[0]["data"]) >= {fact.value for fact in Fact}


def test_local_flavour_runs_strimzi_and_cnpg_in_the_cluster() -> None:
    result = declared("localstack")
    assert len(_custom_resources(result, "Kafka")) == 1
    assert len(_custom_resources(result, "Cluster")) == 1
    cloud = declared("prod")
    assert not _custom_resources(cloud, "Kafka") and not _custom_resources(cloud, "Cluster")


def test_one_stack_owns_the_shared_registry() -> None:
    owners = [s for s in ENVIRONMENTS if declared(s).of_type("aws:ecr/repository:Repository")]
    assert owners == ["dev"]
    names = sorted(
        r.inputs["name"] for r in declared("dev").of_type("aws:ecr/repository:Repository")
    )
    assert names == [
        "event-platform/audit",
        "event-platform/events-api",
        "event-platform/notifier",
        "event-platform/reminders",
    ]
    assert all(r.protect for r in declared("dev").of_type("aws:ecr/repository:Repository"))


def test_registry_matches_where_gitops_pulls_from() -> None:
    registries = json.loads((REPO_ROOT / "infra/gitops/images.json").read_text())["registries"]
    prefix = load_stack_file("dev").registry.repository_prefix
    for env in ("dev", "staging", "prod"):
        assert registries[env].endswith(f".amazonaws.com/{prefix}"), env


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_deployer_role_is_cluster_admin_so_the_k8s_provider_can_connect(stack: str) -> None:
    result = declared(stack)
    entry = result.one("aws:eks/accessEntry:AccessEntry", "admin-deployer")
    # The session context's issuer (an IAM role), never the assumed-role session ARN.
    assert entry.inputs["principalArn"] == "arn:aws:iam::123456789012:role/platform-deployer"
    association = result.one(
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "deployer-policy"
    )
    assert association.inputs["policyArn"].endswith(
        ":cluster-access-policy/AmazonEKSClusterAdminPolicy"
    )
    provider = result.one("pulumi:providers:kubernetes")
    assert result.depends_on(provider, association)


def test_only_keys_that_encrypt_something_are_declared() -> None:
    def purposes(stack: str) -> set[str]:
        return {k.inputs["tags"]["purpose"] for k in declared(stack).of_type("aws:kms/key:Key")}

    assert purposes("dev") == {"eks", "ebs", "msk", "rds", "s3", "ecr", "logs", "secrets"}
    assert purposes("prod") == {"eks", "ebs", "msk", "rds", "s3", "logs", "secrets"}  # no registry
    assert purposes("localstack") == {"s3", "logs"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_pod_identity_role_has_the_one_trust_policy(stack: str) -> None:
    """The EBS CSI role (cluster layer) and the workload roles (platform layer) trust Pod
    Identity through the same document, `infra.cluster.iam.pod_identity_trust_policy`."""
    from infra.cluster.iam import pod_identity_trust_policy

    roles = declared(stack).of_type("aws:iam/role:Role")
    trusted = [r for r in roles if "pods.eks.amazonaws.com" in r.inputs["assumeRolePolicy"]]
    assert {r.name for r in trusted} >= {"cluster-ebs-csi-role", "platform-identities-audit-role"}
    cluster_arn = declared(stack).outputs["clusterArn"]
    for role in trusted:
        trust = json.loads(role.inputs["assumeRolePolicy"])
        assert trust == pod_identity_trust_policy(cluster_arn), role.name
