"""Pure helpers for the EKS cluster: IAM documents, managed-policy ARNs, node AMI type, kubeconfig.

No Pulumi imports: every function takes plain values and returns plain data, so it is tested with
plain pytest (and hypothesis where inputs vary). The component turns the results into JSON.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

# The stack config only accepts commercial regions (infra.config.SUPPORTED_REGIONS has no cn-
# or us-gov-), so the partition is fixed rather than looked up with an extra invoke per resource.
PARTITION = "aws"

POLICY_VERSION = "2012-10-17"

EKS_SERVICE = "eks.amazonaws.com"
EC2_SERVICE = "ec2.amazonaws.com"
POD_IDENTITY_SERVICE = "pods.eks.amazonaws.com"

CLUSTER_MANAGED_POLICIES: tuple[str, ...] = ("AmazonEKSClusterPolicy",)
NODE_MANAGED_POLICIES: tuple[str, ...] = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
)
EBS_CSI_MANAGED_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"

# Instance families with a trailing "g" after the generation digit are Graviton (m7g, c7gn,
# r6gd, t4g); "g5"/"g6" are GPU families and stay x86.
_GRAVITON_FAMILY = re.compile(r"^[a-z]+\d+g[a-z]*$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$")


def managed_policy_arn(name: str, partition: str = PARTITION) -> str:
    """ARN of an AWS-managed IAM policy, e.g. `AmazonEKSClusterPolicy`."""
    return f"arn:{partition}:iam::aws:policy/{name}"


def eks_access_policy_arn(name: str, partition: str = PARTITION) -> str:
    """ARN of an EKS access policy (used by access-policy associations, not by IAM)."""
    return f"arn:{partition}:eks::aws:cluster-access-policy/{name}"


def service_trust_policy(
    service: str, *, tag_session: bool = False, sid: str | None = None
) -> dict[str, Any]:
    """A role trust policy that lets one AWS service principal assume the role."""
    actions = ["sts:AssumeRole", "sts:TagSession"] if tag_session else ["sts:AssumeRole"]
    statement: dict[str, Any] = {"Sid": sid} if sid else {}
    statement |= {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": actions if len(actions) > 1 else actions[0],
    }
    return {"Version": POLICY_VERSION, "Statement": [statement]}


def cluster_trust_policy() -> dict[str, Any]:
    """Trust for the EKS control plane's role. EKS tags its sessions, so TagSession is allowed."""
    return service_trust_policy(EKS_SERVICE, tag_session=True)


def node_trust_policy() -> dict[str, Any]:
    """Trust for the worker nodes' instance role."""
    return service_trust_policy(EC2_SERVICE)


_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:eks:[a-z0-9-]+:(?P<account>\d{12}):cluster/[\w-]+$")


def account_from_cluster_arn(cluster_arn: str) -> str:
    """The account id of an EKS cluster ARN (`arn:aws:eks:<region>:<account>:cluster/<name>`)."""
    match = _CLUSTER_ARN.fullmatch(cluster_arn)
    if not match:
        raise ValueError(
            f"cluster_arn {cluster_arn!r}; allowed: arn:aws:eks:<region>:<account>:cluster/<name>"
        )
    return match["account"]


def pod_identity_trust_policy(cluster_arn: str) -> dict[str, Any]:
    """Trust for a role handed to pods by EKS Pod Identity (the EBS CSI controller, the apps,
    External Secrets, KEDA, the topics Job, the ingress/DNS/autoscaling/logging controllers).

    The Pod Identity agent assumes the role with session tags (cluster, namespace, service
    account), so both `sts:AssumeRole` and `sts:TagSession` are required. The conditions keep
    the role to this account and this cluster: the EKS service principal acts for every
    cluster of every account, so without them another cluster's association (a confused deputy)
    could hand out this role.
    """
    policy = service_trust_policy(POD_IDENTITY_SERVICE, tag_session=True, sid="EksPodIdentity")
    policy["Statement"][0]["Condition"] = {
        "StringEquals": {"aws:SourceAccount": account_from_cluster_arn(cluster_arn)},
        "ArnEquals": {"aws:SourceArn": cluster_arn},
    }
    return policy


def ebs_kms_policy(key_arn: str) -> dict[str, Any]:
    """Inline policy letting the EBS CSI controller use the customer key for new volumes.

    The AWS-managed EBS CSI policy covers EC2 calls only; a customer-managed key additionally
    needs these KMS actions, and grants are limited to AWS services acting on the caller's behalf.
    """
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "UseVolumeKey",
                "Effect": "Allow",
                "Action": [
                    "kms:Decrypt",
                    "kms:DescribeKey",
                    "kms:Encrypt",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                ],
                "Resource": key_arn,
            },
            {
                "Sid": "GrantToEbs",
                "Effect": "Allow",
                "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
                "Resource": key_arn,
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
        ],
    }


def role_name_from_arn(arn: str) -> str:
    """The role name (last path segment) of an IAM role ARN; ValueError if it is not one."""
    match = _ROLE_ARN.fullmatch(arn)
    if not match:
        raise ValueError(
            f"{arn!r} is not an IAM role ARN; allowed: arn:aws:iam::<12-digit account>:role/<name>"
        )
    return match.group(1)


def is_graviton(instance_type: str) -> bool:
    """True for an ARM (Graviton) instance type such as `m7g.large`."""
    family = instance_type.split(".", 1)[0]
    return bool(_GRAVITON_FAMILY.fullmatch(family))


def node_ami_type(instance_types: Sequence[str]) -> str:
    """The EKS AMI type for a node group: Amazon Linux 2023, matching the CPU architecture.

    AL2 is not published for Kubernetes 1.33 and later, so AL2023 is the one choice that works
    for every supported version. A group mixing ARM and x86 types cannot share one AMI.
    """
    if not instance_types:
        raise ValueError("instance_types is empty; allowed: one or more EC2 instance types")
    arm = {is_graviton(t) for t in instance_types}
    if len(arm) > 1:
        raise ValueError(
            f"instance_types {list(instance_types)!r} mix ARM and x86; allowed: one architecture "
            "per node group"
        )
    return "AL2023_ARM_64_STANDARD" if arm.pop() else "AL2023_x86_64_STANDARD"


def region_from_arn(arn: str) -> str:
    """The region field of an ARN (`arn:aws:eks:<region>:<account>:cluster/<name>`)."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[3]:
        raise ValueError(f"{arn!r} is not a regional ARN")
    return parts[3]


def kubeconfig_document(
    *,
    cluster_name: str,
    endpoint: str,
    certificate_authority_data: str,
    region: str,
    extra_env: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """A kubeconfig whose user authenticates with `aws eks get-token` (no static token).

    The token is minted on each use from whatever AWS credentials the caller has, so the
    document holds no secret of its own; it is still exported as a secret because it names the
    private endpoint and the cluster CA.
    """
    exec_config: dict[str, Any] = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": [
            "--region",
            region,
            "eks",
            "get-token",
            "--cluster-name",
            cluster_name,
            "--output",
            "json",
        ],
        "interactiveMode": "Never",
    }
    env = [{"name": key, "value": value} for key, value in extra_env]
    if env:
        exec_config["env"] = env
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": endpoint,
                    "certificate-authority-data": certificate_authority_data,
                },
            }
        ],
        "users": [{"name": cluster_name, "user": {"exec": exec_config}}],
        "contexts": [
            {"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}
        ],
        "current-context": cluster_name,
    }
