"""Network component under mocks: subnet placement, NAT per stack, flow logs, endpoint, tags."""

from __future__ import annotations

import ipaddress
import json

import pulumi
import pytest

from infra.contracts import REQUIRED_TAG_KEYS
from infra.network.vpc import Network, NetworkArgs
from platform_cli.offline import Declared, run_program

BASE_TAGS = {"project": "platform", "stack": "test", "managed-by": "pulumi"}


def _network(nat: str, azs: int = 3, cluster: str | None = "plat-test-eks") -> Declared:
    args = NetworkArgs(
        name_prefix="plat-test",
        region="eu-west-1",
        vpc_cidr="10.40.0.0/16",
        availability_zones=[f"eu-west-1{c}" for c in "abc"[:azs]],
        nat_gateways=nat,  # type: ignore[arg-type]
        flow_logs_retention_days=30,
        logs_kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/logs",
        eks_cluster_name=cluster,
        tags=BASE_TAGS,
    )
    return run_program(lambda: Network("network", args), stack="test", region="eu-west-1")


@pytest.fixture(scope="module")
def per_az() -> Declared:
    return _network("per-az")


@pytest.fixture(scope="module")
def single() -> Declared:
    return _network("single", azs=2)


def _subnets(declared: Declared, tier: str) -> list[dict]:
    return [
        r.inputs
        for r in declared.of_type("aws:ec2/subnet:Subnet")
        if r.inputs["tags"]["tier"] == tier
    ]


def test_three_tiers_in_every_az(per_az: Declared) -> None:
    for tier in ("public", "private", "isolated"):
        subnets = _subnets(per_az, tier)
        assert sorted(s["availabilityZone"] for s in subnets) == [
            "eu-west-1a",
            "eu-west-1b",
            "eu-west-1c",
        ]


def test_subnets_inside_vpc_and_disjoint(per_az: Declared) -> None:
    vpc = ipaddress.IPv4Network(per_az.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"])
    cidrs = [
        ipaddress.IPv4Network(s.inputs["cidrBlock"])
        for s in per_az.of_type("aws:ec2/subnet:Subnet")
    ]
    assert all(c.subnet_of(vpc) for c in cidrs)
    assert len({str(c) for c in cidrs}) == len(cidrs) == 9


def test_no_subnet_assigns_public_ips(per_az: Declared) -> None:
    assert all(
        s.inputs["mapPublicIpOnLaunch"] is False for s in per_az.of_type("aws:ec2/subnet:Subnet")
    )


def test_eks_role_tags(per_az: Declared) -> None:
    assert all(s["tags"]["kubernetes.io/role/elb"] == "1" for s in _subnets(per_az, "public"))
    assert all(
        s["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in _subnets(per_az, "private")
    )
    assert all(
        s["tags"]["kubernetes.io/cluster/plat-test-eks"] == "shared"
        for s in _subnets(per_az, "private")
    )
    assert not any(
        key.startswith("kubernetes.io") for s in _subnets(per_az, "isolated") for key in s["tags"]
    )


def test_nat_per_az_in_prod_shape(per_az: Declared, single: Declared) -> None:
    assert len(per_az.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len(single.of_type("aws:ec2/natGateway:NatGateway")) == 1


def test_private_routes_use_own_az_nat(per_az: Declared) -> None:
    routes = [
        r for r in per_az.of_type("aws:ec2/route:Route") if r.name.startswith("network-private")
    ]
    assert len(routes) == 3
    for route in routes:
        az = route.name.rsplit("-", 1)[1]
        assert route.inputs["natGatewayId"].rsplit("-", 1)[0] == f"network-nat-{az}"


def test_single_nat_shared_by_all_azs(single: Declared) -> None:
    routes = [
        r for r in single.of_type("aws:ec2/route:Route") if r.name.startswith("network-private")
    ]
    assert {r.inputs["natGatewayId"].rsplit("-", 1)[0] for r in routes} == {"network-nat-0"}


def test_isolated_subnets_have_no_default_route(per_az: Declared) -> None:
    isolated_rt = per_az.one("aws:ec2/routeTable:RouteTable", "isolated-rt")
    routes = per_az.of_type("aws:ec2/route:Route")
    assert not [r for r in routes if r.inputs["routeTableId"].startswith(isolated_rt.name)]


def test_flow_logs_all_traffic_to_encrypted_group(per_az: Declared) -> None:
    flow = per_az.one("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL"
    group = per_az.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["retentionInDays"] == 30
    assert group.inputs["kmsKeyId"].endswith(":key/logs")
    policy = json.loads(per_az.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    for statement in policy["Statement"]:
        assert "*" not in statement["Resource"]
        assert not any(action.endswith("*") for action in statement["Action"])


def test_s3_gateway_endpoint_on_private_and_isolated_tables(per_az: Declared) -> None:
    (endpoint,) = [
        e
        for e in per_az.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if e.inputs["vpcEndpointType"] == "Gateway"
    ]
    assert endpoint.inputs["serviceName"] == "com.amazonaws.eu-west-1.s3"
    assert len(endpoint.inputs["routeTableIds"]) == 4


def test_default_security_group_has_no_rules(per_az: Declared) -> None:
    sg = per_az.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert sg.inputs.get("ingress", []) == [] and sg.inputs.get("egress", []) == []


def test_every_tagged_resource_carries_base_tags(per_az: Declared) -> None:
    tagged = [r for r in per_az.resources if r.custom and "tags" in r.inputs]
    assert len(tagged) >= 20
    for resource in tagged:
        missing = [k for k in REQUIRED_TAG_KEYS if k not in resource.inputs["tags"]]
        assert not missing, f"{resource.name} lacks {missing}"
        assert resource.inputs["tags"]["Name"].startswith("plat-test")


def test_children_are_parented_and_named(per_az: Declared) -> None:
    component = per_az.one("platform:network:Network")
    for resource in per_az.resources:
        if resource is component:
            continue
        assert resource.parent == component.urn
        assert resource.name.startswith("network-")


def test_register_outputs_lists_public_outputs(per_az: Declared) -> None:
    component = per_az.one("platform:network:Network")
    outputs = per_az.component_outputs[component.urn]
    assert set(outputs) >= {"vpc_id", "private_subnet_ids", "isolated_subnet_ids"}
    assert len(outputs["private_subnet_ids"]) == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("availability_zones", ["eu-west-1a"], "availability_zones"),
        ("nat_gateways", "two", "nat_gateways: 'two'; allowed: 'single', 'per-az'"),
        ("flow_logs_retention_days", 0, "flow_logs_retention_days"),
    ],
)
def test_invalid_args_fail_before_any_resource(field: str, value: object, message: str) -> None:
    base = {
        "name_prefix": "p",
        "region": "eu-west-1",
        "vpc_cidr": "10.0.0.0/16",
        "availability_zones": ["a", "b"],
        "nat_gateways": "single",
        "flow_logs_retention_days": 1,
    }
    base[field] = value
    args = NetworkArgs(**base)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        args.validate()


def test_validation_runs_before_children() -> None:
    args = NetworkArgs(
        name_prefix="p",
        region="eu-west-1",
        vpc_cidr="10.0.0.0/16",
        availability_zones=["a"],
        nat_gateways="single",
        flow_logs_retention_days=1,
    )
    declared_before: list[str] = []

    def program() -> None:
        try:
            Network("network", args)
        except ValueError:
            declared_before.append("raised")
        pulumi.export("done", True)

    declared = run_program(program, stack="test", region="eu-west-1")
    assert declared_before == ["raised"]
    assert declared.resources == []
