"""The VPC: three subnet tiers across the configured AZs, NAT, flow logs, S3 gateway endpoint."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from infra.component import PlatformComponent
from infra.naming import merge_tags
from infra.network.cidr import MAX_AZS, SubnetPlan, plan_subnets


@dataclass(frozen=True)
class NetworkArgs:
    """Inputs of the Network component.

    - name_prefix: prefix of physical names and `Name` tags (e.g. `plat-prod`).
    - region: the AWS region (names the S3 gateway endpoint service).
    - vpc_cidr: the VPC range; subnets are derived by `infra.network.cidr.plan_subnets`.
    - availability_zones: AZ names to spread over (2 or 3).
    - nat_gateways: `single` (one NAT for the VPC) or `per-az` (no cross-AZ dependency).
    - flow_logs_retention_days: CloudWatch retention of the VPC flow logs.
    - logs_kms_key_arn: customer key encrypting the flow-log group.
    - eks_cluster_name: when set, subnets carry the EKS discovery and load-balancer role tags.
    - tags: base + user tags for every taggable resource.
    """

    name_prefix: str
    region: str
    vpc_cidr: str
    availability_zones: Sequence[str]
    nat_gateways: Literal["single", "per-az"]
    flow_logs_retention_days: int
    logs_kms_key_arn: pulumi.Input[str] | None = None
    eks_cluster_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if not 2 <= len(self.availability_zones) <= MAX_AZS:
            raise ValueError(
                f"availability_zones: {list(self.availability_zones)}; allowed: 2 to {MAX_AZS}"
            )
        if self.nat_gateways not in ("single", "per-az"):
            raise ValueError(f"nat_gateways: {self.nat_gateways!r}; allowed: 'single', 'per-az'")
        if self.flow_logs_retention_days < 1:
            raise ValueError(f"flow_logs_retention_days: {self.flow_logs_retention_days}; >= 1")
        plan_subnets(self.vpc_cidr, len(self.availability_zones))  # raises on a bad CIDR


def subnet_role_tags(tier: str, cluster_name: str | None) -> dict[str, str]:
    """The tags the AWS load balancer controller and EKS use to discover subnets."""
    if cluster_name is None or tier == "isolated":
        return {}
    role = "kubernetes.io/role/elb" if tier == "public" else "kubernetes.io/role/internal-elb"
    return {role: "1", f"kubernetes.io/cluster/{cluster_name}": "shared"}


def flow_logs_policy(log_group_arn: str) -> str:
    """Least-privilege policy for the flow-logs role: write to this one log group only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    "Resource": [log_group_arn, f"{log_group_arn}:*"],
                }
            ],
        }
    )


FLOW_LOGS_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


INTERFACE_ENDPOINT_SERVICES: tuple[str, ...] = ("s3", "secretsmanager")
"""AWS APIs the pods reach through interface endpoints in the data subnets (EKS flavour)."""


class Network(PlatformComponent[NetworkArgs]):
    """VPC with public, private (workloads) and isolated (data) subnets in every AZ."""

    TYPE_TOKEN = "platform:network:Network"

    vpc_id: pulumi.Output[str]
    vpc_cidr: str
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    isolated_subnet_ids: list[pulumi.Output[str]]
    private_route_table_ids: list[pulumi.Output[str]]
    nat_gateway_ids: list[pulumi.Output[str]]

    def declare(self, name: str, args: NetworkArgs) -> dict[str, Any]:
        prefix = args.name_prefix

        def tags(physical: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
            return merge_tags(physical, args.tags, extra or {})

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(f"{prefix}-vpc"),
            opts=self.child,
        )
        # The default security group allows all traffic between its members; owning it with no
        # rules means nothing can rely on it by accident.
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=tags(f"{prefix}-default-sg"),
            opts=self.child,
        )
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=tags(f"{prefix}-igw"), opts=self.child
        )

        azs = list(args.availability_zones)
        plans = plan_subnets(args.vpc_cidr, len(azs))
        subnets: dict[tuple[str, int], aws.ec2.Subnet] = {}
        for plan in plans:
            subnets[(plan.tier, plan.az_index)] = self._subnet(name, prefix, vpc, plan, azs, args)

        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=vpc.id, tags=tags(f"{prefix}-public-rt"), opts=self.child
        )
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=public_rt.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=igw.id,
            opts=self.child,
        )

        nat_count = len(azs) if args.nat_gateways == "per-az" else 1
        nats: list[aws.ec2.NatGateway] = []
        for az in range(nat_count):
            eip = aws.ec2.Eip(
                f"{name}-nat-eip-{az}",
                domain="vpc",
                tags=tags(f"{prefix}-nat-{az}"),
                opts=self.child,
            )
            nats.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{az}",
                    allocation_id=eip.id,
                    subnet_id=subnets[("public", az)].id,
                    tags=tags(f"{prefix}-nat-{az}"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                )
            )

        private_rts: list[aws.ec2.RouteTable] = []
        isolated_rt = aws.ec2.RouteTable(
            f"{name}-isolated-rt",
            vpc_id=vpc.id,
            tags=tags(f"{prefix}-isolated-rt"),
            opts=self.child,
        )
        for az in range(len(azs)):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-rta-{az}",
                subnet_id=subnets[("public", az)].id,
                route_table_id=public_rt.id,
                opts=self.child,
            )
            rt = aws.ec2.RouteTable(
                f"{name}-private-rt-{az}",
                vpc_id=vpc.id,
                tags=tags(f"{prefix}-private-rt-{az}"),
                opts=self.child,
            )
            # With a single NAT every AZ routes through AZ 0's gateway (cheaper, one failure
            # domain); per-az keeps each AZ's egress inside the AZ.
            nat = nats[az] if args.nat_gateways == "per-az" else nats[0]
            aws.ec2.Route(
                f"{name}-private-default-{az}",
                route_table_id=rt.id,
                destination_cidr_block="0.0.0.0/0",
                nat_gateway_id=nat.id,
                opts=self.child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-rta-{az}",
                subnet_id=subnets[("private", az)].id,
                route_table_id=rt.id,
                opts=self.child,
            )
            # Isolated subnets get no default route at all: the database never reaches out.
            aws.ec2.RouteTableAssociation(
                f"{name}-isolated-rta-{az}",
                subnet_id=subnets[("isolated", az)].id,
                route_table_id=isolated_rt.id,
                opts=self.child,
            )
            private_rts.append(rt)

        # S3 through a gateway endpoint: image layers and archives never cross the NAT.
        aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts] + [isolated_rt.id],
            tags=tags(f"{prefix}-s3-endpoint"),
            opts=self.child,
        )
        if args.eks_cluster_name is not None:
            self._interface_endpoints(
                name, vpc, [subnets[("isolated", az)] for az in range(len(azs))], args, tags
            )

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/aws/vpc/{prefix}/flow-logs",
            retention_in_days=args.flow_logs_retention_days,
            kms_key_id=args.logs_kms_key_arn,
            tags=tags(f"{prefix}-flow-logs"),
            opts=self.child,
        )
        flow_role = aws.iam.Role(
            f"{name}-flow-logs-role",
            assume_role_policy=FLOW_LOGS_TRUST,
            tags=tags(f"{prefix}-flow-logs"),
            opts=self.child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs-policy",
            role=flow_role.id,
            policy=log_group.arn.apply(flow_logs_policy),
            opts=self.child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=flow_role.arn,
            max_aggregation_interval=60,
            tags=tags(f"{prefix}-flow-log"),
            opts=self.child,
        )

        def ids(tier: str) -> list[pulumi.Output[str]]:
            return [subnets[(tier, az)].id for az in range(len(azs))]

        self.vpc_id = vpc.id
        self.vpc_cidr = args.vpc_cidr
        self.public_subnet_ids = ids("public")
        self.private_subnet_ids = ids("private")
        self.isolated_subnet_ids = ids("isolated")
        self.private_route_table_ids = [rt.id for rt in private_rts]
        self.nat_gateway_ids = [nat.id for nat in nats]
        return {
            "vpc_id": self.vpc_id,
            "vpc_cidr": self.vpc_cidr,
            "public_subnet_ids": self.public_subnet_ids,
            "private_subnet_ids": self.private_subnet_ids,
            "isolated_subnet_ids": self.isolated_subnet_ids,
            "private_route_table_ids": self.private_route_table_ids,
            "nat_gateway_ids": self.nat_gateway_ids,
        }

    def _interface_endpoints(
        self,
        name: str,
        vpc: aws.ec2.Vpc,
        data_subnets: list[aws.ec2.Subnet],
        args: NetworkArgs,
        tags: Any,
    ) -> list[aws.ec2.VpcEndpoint]:
        """S3 and Secrets Manager as addresses in the data (isolated) subnets, so a
        NetworkPolicy can name them.

        Pods' HTTPS to AWS (the audit archive in S3, each app's own database login in Secrets
        Manager) is allowed only to the data subnets' CIDRs. The S3 gateway endpoint's
        destinations are S3's public prefix list and Secrets Manager is a public endpoint: a
        NetworkPolicy can name neither. Private DNS for every client of the VPC makes the
        regional names resolve to these endpoints' ENIs. Cost: each endpoint's hourly charge per
        AZ and per-GB processing (for S3, the VPC's image layers too), accepted for egress that
        can be enforced.
        """
        prefix = args.name_prefix
        endpoint_sg = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=vpc.id,
            description=f"Interface endpoints of {prefix}: HTTPS from the VPC",
            tags=tags(f"{prefix}-endpoints-sg"),
            opts=self.child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-https",
            security_group_id=endpoint_sg.id,
            cidr_ipv4=args.vpc_cidr,
            ip_protocol="tcp",
            from_port=443,
            to_port=443,
            description="HTTPS to the AWS APIs from the VPC",
            tags=tags(f"{prefix}-endpoints-https"),
            opts=self.child,
        )
        endpoints = []
        for service in INTERFACE_ENDPOINT_SERVICES:
            endpoints.append(
                aws.ec2.VpcEndpoint(
                    f"{name}-{service}-interface-endpoint",
                    vpc_id=vpc.id,
                    service_name=f"com.amazonaws.{args.region}.{service}",
                    vpc_endpoint_type="Interface",
                    subnet_ids=[subnet.id for subnet in data_subnets],
                    security_group_ids=[endpoint_sg.id],
                    private_dns_enabled=True,
                    # S3 with a gateway endpoint too: private DNS for every client of the VPC.
                    dns_options=(
                        aws.ec2.VpcEndpointDnsOptionsArgs(
                            dns_record_ip_type="ipv4",
                            private_dns_only_for_inbound_resolver_endpoint=False,
                        )
                        if service == "s3"
                        else None
                    ),
                    tags=tags(f"{prefix}-{service}-interface-endpoint"),
                    opts=self.child,
                )
            )
        return endpoints

    def _subnet(
        self,
        name: str,
        prefix: str,
        vpc: aws.ec2.Vpc,
        plan: SubnetPlan,
        azs: list[str],
        args: NetworkArgs,
    ) -> aws.ec2.Subnet:
        physical = f"{prefix}-{plan.tier}-{azs[plan.az_index]}"
        return aws.ec2.Subnet(
            f"{name}-{plan.tier}-{plan.az_index}",
            vpc_id=vpc.id,
            cidr_block=plan.cidr,
            availability_zone=azs[plan.az_index],
            # Nothing gets a public IP implicitly; load balancers and NAT bring their own.
            map_public_ip_on_launch=False,
            tags=merge_tags(
                physical,
                args.tags,
                {"tier": plan.tier, **subnet_role_tags(plan.tier, args.eks_cluster_name)},
            ),
            opts=self.child,
        )
