"""Network exposure: no ingress from the whole internet (except a public load balancer's 80/443),
and an EKS API endpoint that is private or limited to known CIDRs."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import rule
from infra.policies.encryption import EKS_CLUSTER
from infra.policies.model import ResourceView, RuleContext
from infra.policies.values import OPEN_CIDRS, as_list, get, is_false, is_true, port_range

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SECURITY_GROUP_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
PUBLIC_LB_PORTS = frozenset({80, 443})


def _is_open(cidr: Any) -> bool:
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return cidr in OPEN_CIDRS


def _fronts_public_load_balancer(group: ResourceView, context: RuleContext) -> bool:
    """True when an internet-facing load balancer declared in the stack uses this group."""
    for balancer in context.of_type(LOAD_BALANCERS):
        if is_true(balancer.inputs.get("internal")):
            continue
        if group.urn in balancer.property_dependencies.get("securityGroups", ()):
            return True
    return False


def _open_ingress_message(
    cidrs: list[Any],
    from_port: Any,
    to_port: Any,
    protocol: Any,
    group: ResourceView | None,
    context: RuleContext,
) -> str | None:
    open_cidrs = sorted(str(c) for c in cidrs if _is_open(c))
    if not open_cidrs:
        return None
    ports = port_range(from_port, to_port, protocol)
    web_port = ports is not None and ports[0] == ports[1] and ports[0] in PUBLIC_LB_PORTS
    if web_port and group is not None and _fronts_public_load_balancer(group, context):
        return None
    shown = (
        "all ports"
        if ports is None
        else (f"port {ports[0]}" if ports[0] == ports[1] else f"ports {ports[0]}-{ports[1]}")
    )
    return (
        f"ingress from {' and '.join(open_cidrs)} on {shown}; allowed: only 80/443 on the "
        "security group of an internet-facing load balancer"
    )


def _target_group(context: RuleContext) -> ResourceView | None:
    groups = [g for g in context.referenced("securityGroupId") if g.type == SECURITY_GROUP]
    return groups[0] if groups else None


@rule(
    "no-open-ingress",
    "No security-group ingress from 0.0.0.0/0 or ::/0, except 80/443 on a public load balancer.",
    types=[
        SECURITY_GROUP,
        DEFAULT_SECURITY_GROUP,
        SECURITY_GROUP_INGRESS_RULE,
        SECURITY_GROUP_RULE,
    ],
    needs_stack=True,
)
def no_open_ingress(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        for index, entry in enumerate(as_list(inputs.get("ingress"))):
            cidrs = [*as_list(get(entry, "cidrBlocks")), *as_list(get(entry, "ipv6CidrBlocks"))]
            message = _open_ingress_message(
                cidrs,
                get(entry, "fromPort"),
                get(entry, "toPort"),
                get(entry, "protocol"),
                context.resource,
                context,
            )
            if message:
                yield f"ingress[{index}]: {message}"
        return
    if resource_type == SECURITY_GROUP_RULE:
        if inputs.get("type") != "ingress":
            return
        cidrs = [*as_list(inputs.get("cidrBlocks")), *as_list(inputs.get("ipv6CidrBlocks"))]
        protocol = inputs.get("protocol")
    else:
        cidrs = [inputs.get("cidrIpv4"), inputs.get("cidrIpv6")]
        protocol = inputs.get("ipProtocol")
    message = _open_ingress_message(
        cidrs,
        inputs.get("fromPort"),
        inputs.get("toPort"),
        protocol,
        _target_group(context),
        context,
    )
    if message:
        yield message


@rule(
    "eks-endpoint-restricted",
    "The EKS API endpoint is private, or public only to listed CIDRs (never 0.0.0.0/0).",
    types=[EKS_CLUSTER],
)
def eks_endpoint_restricted(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    vpc_config = inputs.get("vpcConfig")
    # The EKS API's default is a public endpoint open to 0.0.0.0/0, so "not set" means open.
    if is_false(get(vpc_config, "endpointPublicAccess")):
        return
    cidrs = as_list(get(vpc_config, "publicAccessCidrs"))
    if not cidrs:
        yield (
            "EKS public endpoint is open to 0.0.0.0/0 (no publicAccessCidrs): set "
            "vpcConfig.endpointPublicAccess=false or list the allowed CIDRs"
        )
        return
    open_cidrs = sorted(str(c) for c in cidrs if _is_open(c))
    if open_cidrs:
        yield (
            f"EKS public endpoint allows {', '.join(open_cidrs)}: close it "
            "(endpointPublicAccess=false) or narrow publicAccessCidrs"
        )
