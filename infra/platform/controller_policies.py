"""IAM documents of the cluster's AWS-calling controllers (pure functions, no Pulumi).

- The AWS Load Balancer Controller: learnt from the controller's own `docs/install/iam_policy.json`
  at the pinned release (v2.13.4, chart 1.13.4), written here as typed statements and narrowed:
  every action listed one by one; ARNs carry this region and account instead of `*:*`; what the
  controller creates or changes must carry the `elbv2.k8s.aws/cluster` tag with THIS cluster's
  name (upstream only asks for the tag to exist); security-group rule changes are limited to this
  VPC. Left out, because the platform does not use them (the chart values switch them off): WAF
  (regional and v2), Shield and Cognito. `acm:DescribeCertificate`/`ListCertificates` stay: the
  controller checks the configured certificate.
- external-dns: records in the stack's one hosted zone.
- cluster-autoscaler: resize and terminate only node-group ASGs tagged as owned by this cluster.
- Fluent Bit: write to the stack's one pod log group.

Descriptive (read-only) EC2/ELB/autoscaling calls have no resource-level permissions in IAM, so
they stay on `*`; every mutating call is scoped by ARN or by condition.
"""

from __future__ import annotations

from typing import Any

from infra.cluster.iam import PARTITION, POLICY_VERSION

LB_CLUSTER_TAG = "elbv2.k8s.aws/cluster"

LB_DESCRIBE_ACTIONS: tuple[str, ...] = (
    "ec2:DescribeAccountAttributes",
    "ec2:DescribeAddresses",
    "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInternetGateways",
    "ec2:DescribeVpcs",
    "ec2:DescribeVpcPeeringConnections",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeTags",
    "ec2:DescribeRouteTables",
    "ec2:GetSecurityGroupsForVpc",
    "ec2:DescribeIpamPools",
    "ec2:GetCoipPoolUsage",
    "ec2:DescribeCoipPools",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeListenerCertificates",
    "elasticloadbalancing:DescribeListenerAttributes",
    "elasticloadbalancing:DescribeSSLPolicies",
    "elasticloadbalancing:DescribeRules",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeTrustStores",
    "elasticloadbalancing:DescribeCapacityReservation",
    "acm:ListCertificates",
    "acm:DescribeCertificate",
)
LB_SG_RULE_ACTIONS = ("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress")
LB_OWN_SG_ACTIONS = (*LB_SG_RULE_ACTIONS, "ec2:DeleteSecurityGroup")
LB_CREATE_ACTIONS = (
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:CreateTargetGroup",
)
LB_LISTENER_ACTIONS = (
    "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:CreateRule",
    "elasticloadbalancing:DeleteRule",
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:AddListenerCertificates",
    "elasticloadbalancing:RemoveListenerCertificates",
    "elasticloadbalancing:ModifyRule",
    "elasticloadbalancing:SetRulePriorities",
)
LB_MODIFY_ACTIONS = (
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups",
    "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyListenerAttributes",
    "elasticloadbalancing:ModifyCapacityReservation",
    "elasticloadbalancing:ModifyIpPools",
)
LB_TAG_ACTIONS = ("elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags")
LB_TARGET_ACTIONS = (
    "elasticloadbalancing:RegisterTargets",
    "elasticloadbalancing:DeregisterTargets",
)

DNS_CHANGE_ACTIONS = ("route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets")
DNS_LIST_ACTIONS = ("route53:ListHostedZones", "route53:ListTagsForResources")

AUTOSCALER_DESCRIBE_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
)
AUTOSCALER_RESIZE_ACTIONS = (
    "autoscaling:SetDesiredCapacity",
    "autoscaling:TerminateInstanceInAutoScalingGroup",
)
AUTOSCALER_NODEGROUP_ACTIONS = ("eks:DescribeNodegroup",)

LOG_WRITE_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams")


def _statement(
    sid: str,
    actions: tuple[str, ...],
    resources: list[str],
    condition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Action": sorted(set(actions)),
        "Resource": sorted(set(resources)),
    }
    if condition:
        statement["Condition"] = condition
    return statement


def _check(label: str, value: str) -> None:
    if not value or "*" in value:
        raise ValueError(f"{label}: {value!r}; allowed: a literal value without *")


def load_balancer_controller_policy(
    *, region: str, account: str, vpc_id: str, cluster_name: str
) -> dict[str, Any]:
    """The AWS Load Balancer Controller's role (see the module docstring for the narrowing)."""
    for label, value in (
        ("region", region),
        ("account", account),
        ("vpc_id", vpc_id),
        ("cluster_name", cluster_name),
    ):
        _check(label, value)
    ec2 = f"arn:{PARTITION}:ec2:{region}:{account}"
    elb = f"arn:{PARTITION}:elasticloadbalancing:{region}:{account}"
    security_groups = f"{ec2}:security-group/*"
    balancers = [f"{elb}:loadbalancer/app/*/*", f"{elb}:loadbalancer/net/*/*"]
    target_groups = f"{elb}:targetgroup/*/*"
    listeners = [
        f"{elb}:listener/app/*/*/*",
        f"{elb}:listener/net/*/*/*",
        f"{elb}:listener-rule/app/*/*/*",
        f"{elb}:listener-rule/net/*/*/*",
    ]
    ours = {"StringEquals": {f"aws:ResourceTag/{LB_CLUSTER_TAG}": cluster_name}}
    tagged_on_create = {"StringEquals": {f"aws:RequestTag/{LB_CLUSTER_TAG}": cluster_name}}
    statements = [
        _statement(
            "ServiceLinkedRoleForElb",
            ("iam:CreateServiceLinkedRole",),
            [
                f"arn:{PARTITION}:iam::{account}:role/aws-service-role/"
                "elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing"
            ],
            {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
        ),
        _statement("Describe", LB_DESCRIBE_ACTIONS, ["*"]),
        # The controller opens the node/pod security group to its load balancers' group.
        _statement(
            "SecurityGroupRulesInThisVpc",
            LB_SG_RULE_ACTIONS,
            [security_groups],
            {"ArnEquals": {"ec2:Vpc": f"{ec2}:vpc/{vpc_id}"}},
        ),
        _statement(
            "CreateSecurityGroupInThisVpc",
            ("ec2:CreateSecurityGroup",),
            [f"{ec2}:vpc/{vpc_id}"],
        ),
        _statement(
            "CreateTaggedSecurityGroup",
            ("ec2:CreateSecurityGroup",),
            [security_groups],
            tagged_on_create,
        ),
        _statement(
            "TagSecurityGroupOnCreate",
            ("ec2:CreateTags",),
            [security_groups],
            {
                "StringEquals": {
                    "ec2:CreateAction": "CreateSecurityGroup",
                    **tagged_on_create["StringEquals"],
                }
            },
        ),
        _statement(
            "ManageOwnSecurityGroups",
            (*LB_OWN_SG_ACTIONS, "ec2:CreateTags", "ec2:DeleteTags"),
            [security_groups],
            ours,
        ),
        _statement(
            "CreateTaggedBalancers",
            LB_CREATE_ACTIONS,
            [*balancers, target_groups],
            tagged_on_create,
        ),
        _statement(
            "TagBalancersOnCreate",
            ("elasticloadbalancing:AddTags",),
            [*balancers, target_groups],
            {
                "StringEquals": {
                    "elasticloadbalancing:CreateAction": [
                        "CreateLoadBalancer",
                        "CreateTargetGroup",
                    ],
                    **tagged_on_create["StringEquals"],
                }
            },
        ),
        _statement(
            "ManageOwnBalancers",
            (*LB_MODIFY_ACTIONS, *LB_TAG_ACTIONS),
            [*balancers, target_groups],
            ours,
        ),
        # Listeners and rules carry no tag condition upstream either: they live under balancers
        # the statements above already confine; their ARNs are scoped to this account/region.
        _statement("Listeners", (*LB_LISTENER_ACTIONS, *LB_TAG_ACTIONS), [*balancers, *listeners]),
        _statement("Targets", LB_TARGET_ACTIONS, [target_groups], ours),
    ]
    return {"Version": POLICY_VERSION, "Statement": statements}


def external_dns_policy(*, zone_id: str) -> dict[str, Any]:
    """external-dns: change and list records of the one hosted zone; find zones to match it."""
    _check("zone_id", zone_id)
    zone = f"arn:{PARTITION}:route53:::hostedzone/{zone_id}"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            _statement("RecordsOfTheStackZone", DNS_CHANGE_ACTIONS, [zone]),
            # ListHostedZones has no resource-level permission; the tags call reads zone tags.
            _statement("FindZones", DNS_LIST_ACTIONS, ["*"]),
        ],
    }


def cluster_autoscaler_policy(*, region: str, account: str, cluster_name: str) -> dict[str, Any]:
    """cluster-autoscaler: resize only ASGs that EKS tagged as this cluster's node groups."""
    for label, value in (("region", region), ("account", account), ("cluster_name", cluster_name)):
        _check(label, value)
    groups = (
        f"arn:{PARTITION}:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/*"
    )
    nodegroups = f"arn:{PARTITION}:eks:{region}:{account}:nodegroup/{cluster_name}/*/*"
    owned = {
        "StringEquals": {
            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned",
            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
        }
    }
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            _statement("Describe", AUTOSCALER_DESCRIBE_ACTIONS, ["*"]),
            _statement("ResizeOwnNodeGroups", AUTOSCALER_RESIZE_ACTIONS, [groups], owned),
            _statement("DescribeOwnNodeGroups", AUTOSCALER_NODEGROUP_ACTIONS, [nodegroups]),
        ],
    }


def log_shipper_policy(*, log_group_arn: str) -> dict[str, Any]:
    """Fluent Bit: streams and events in the stack's pod log group only (it creates no group)."""
    _check("log_group_arn", log_group_arn.removesuffix(":*"))
    group = log_group_arn.removesuffix(":*")
    return {
        "Version": POLICY_VERSION,
        "Statement": [_statement("WritePodLogs", LOG_WRITE_ACTIONS, [group, f"{group}:*"])],
    }
