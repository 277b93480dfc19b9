"""EksCluster: an EKS control plane, managed node groups, core add-ons and a Kubernetes provider.

What it guarantees (each property is asserted in tests/infra/test_cluster_eks.py):

- Private API endpoint always on; the public endpoint exists only when CIDRs are configured, and
  then only for those CIDRs (never 0.0.0.0/0).
- Kubernetes secrets envelope-encrypted with the customer KMS key; every control-plane log type
  on, into a pre-created log group with retention (and KMS) so logs do not live forever.
- Authentication through EKS access entries (mode `API`): no aws-auth ConfigMap, no implicit
  admin for whoever ran `pulumi up`; the configured roles get cluster-admin explicitly.
- Nodes through a launch template: IMDSv2 required with hop limit 1, encrypted gp3 root volumes
  with the customer EBS key, our own security groups (no ingress from anywhere).
- Core add-ons pinned to the versions in `ClusterConfig.addon_versions`, including the Pod
  Identity agent; the EBS CSI driver gets AWS credentials through Pod Identity.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.cluster import iam
from infra.component import PlatformComponent
from infra.config import LOG_RETENTION_DAYS, SUPPORTED_EKS_VERSIONS, NodeGroupConfig
from infra.contracts import KUBE_SYSTEM_NAMESPACE
from infra.naming import merge_tags

COMPONENT_TYPE = "platform:cluster:EksCluster"

CONTROL_PLANE_LOG_TYPES: tuple[str, ...] = (
    "api",
    "audit",
    "authenticator",
    "controllerManager",
    "scheduler",
)

# DaemonSets that nodes need to become Ready (CNI, kube-proxy) or that pods need from their first
# start (Pod Identity agent): installed before the node groups, which wait for Ready nodes.
ADDONS_BEFORE_NODES: tuple[str, ...] = ("vpc-cni", "kube-proxy", "eks-pod-identity-agent")
# Deployments that only turn healthy once there are nodes to schedule on.
ADDONS_AFTER_NODES: tuple[str, ...] = ("coredns", "aws-ebs-csi-driver")
REQUIRED_ADDONS: tuple[str, ...] = ADDONS_BEFORE_NODES + ADDONS_AFTER_NODES

EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"

# Add-on settings (the add-on's configuration schema, `aws eks describe-addon-configuration`).
# vpc-cni: its network policy agent enforces the NetworkPolicies the GitOps manifests render;
# without it they are accepted by the API server and silently ignored.
ADDON_CONFIGURATION: dict[str, dict[str, object]] = {
    "vpc-cni": {"enableNetworkPolicy": "true"},
}

_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
# AL2023 AMIs expose the root volume as /dev/xvda.
_ROOT_DEVICE = "/dev/xvda"


@dataclass(frozen=True)
class EksClusterArgs:
    """Inputs of `EksCluster`.

    Fields:
        cluster_name: physical EKS cluster name (also names the log group and node resources).
        version: Kubernetes minor version, one of `infra.config.SUPPORTED_EKS_VERSIONS`.
        addon_versions: add-on name -> exact `vX.Y.Z-eksbuild.N`; must cover `REQUIRED_ADDONS`.
        node_groups: managed node groups (name, instance types, sizes, disk, capacity type).
        public_access_cidrs: CIDRs allowed on the public API endpoint; empty disables it.
        admin_role_arns: IAM roles granted cluster-admin through access entries (people, break-
            glass roles). Do not repeat the deployer's role here when `grant_deployer_admin` is on.
        grant_deployer_admin: also grant cluster-admin to the IAM role running `pulumi up`
            (resolved from the caller's session), so the Kubernetes provider below can reach the
            API on the first deployment without hand-written ARNs.
        vpc_id: VPC for the cluster and node security groups.
        private_subnet_ids: subnets for the control-plane ENIs and the nodes (no public IPs).
        secrets_kms_key_arn: customer KMS key for envelope encryption of Kubernetes secrets.
        ebs_kms_key_arn: customer KMS key for node root volumes and CSI-provisioned volumes.
        log_retention_days: retention of the control-plane log group (a CloudWatch value).
        logs_kms_key_arn: optional KMS key for the log group (None: CloudWatch's own key).
        tags: base tags (project, stack, managed-by) plus user tags, applied to every resource.
        protect: Pulumi `protect` and EKS deletion protection on the control plane.
    """

    cluster_name: str
    version: str
    addon_versions: Mapping[str, str]
    node_groups: Sequence[NodeGroupConfig]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    secrets_kms_key_arn: pulumi.Input[str]
    ebs_kms_key_arn: pulumi.Input[str]
    public_access_cidrs: Sequence[str] = ()
    admin_role_arns: Sequence[str] = ()
    grant_deployer_admin: bool = False
    log_retention_days: int = 90
    logs_kms_key_arn: pulumi.Input[str] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    protect: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the field, the bad value and what is allowed."""
        if not _CLUSTER_NAME.fullmatch(self.cluster_name):
            raise ValueError(
                f"cluster_name: {self.cluster_name!r}; allowed: 1-100 letters, digits, '-' or '_', "
                "starting with a letter or digit"
            )
        if self.version not in SUPPORTED_EKS_VERSIONS:
            raise ValueError(
                f"version: {self.version!r}; allowed: {', '.join(SUPPORTED_EKS_VERSIONS)}"
            )
        missing = [name for name in REQUIRED_ADDONS if name not in self.addon_versions]
        unknown = [name for name in self.addon_versions if name not in REQUIRED_ADDONS]
        if missing or unknown:
            raise ValueError(
                f"addon_versions: missing {missing}, unknown {unknown}; allowed: exactly "
                f"{', '.join(REQUIRED_ADDONS)}"
            )
        for addon, version in self.addon_versions.items():
            if not _ADDON_VERSION.fullmatch(version):
                raise ValueError(
                    f"addon_versions[{addon!r}]: {version!r} is not pinned; allowed: an exact "
                    "vX.Y.Z-eksbuild.N"
                )
        _validate_node_groups(self.node_groups)
        for cidr in self.public_access_cidrs:
            try:
                network = ipaddress.ip_network(cidr, strict=True)
            except ValueError:
                raise ValueError(
                    f"public_access_cidrs: {cidr!r} is not a CIDR; allowed: e.g. 203.0.113.0/24"
                ) from None
            if network.prefixlen == 0:
                raise ValueError(
                    f"public_access_cidrs: {cidr!r} opens the API to the internet; allowed: "
                    "narrower CIDRs, or none to keep the endpoint private"
                )
        admin_names = []
        for arn in self.admin_role_arns:
            try:
                admin_names.append(iam.role_name_from_arn(arn))
            except ValueError as exc:
                raise ValueError(f"admin_role_arns: {exc}") from None
        if len(set(admin_names)) != len(admin_names):
            raise ValueError(
                f"admin_role_arns: role names {admin_names} repeat; allowed: each role once"
            )
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"log_retention_days: {self.log_retention_days}; allowed: "
                f"{', '.join(str(d) for d in LOG_RETENTION_DAYS)}"
            )
        for key in ("project", "stack", "managed-by"):
            if key not in self.tags:
                raise ValueError(
                    f"tags: {dict(self.tags)!r} lacks base tag {key!r}; allowed: the stack's "
                    "base_tags merged with user tags"
                )


def _validate_node_groups(groups: Sequence[NodeGroupConfig]) -> None:
    if not groups:
        raise ValueError("node_groups: empty; allowed: one or more node groups")
    names = [group.name for group in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"node_groups: names {names} repeat; allowed: unique names")
    for group in groups:
        try:
            iam.node_ami_type(group.instance_types)
        except ValueError as exc:
            raise ValueError(f"node_groups[{group.name!r}].{exc}") from None


class EksCluster(PlatformComponent[EksClusterArgs]):
    """An EKS cluster with managed nodes, pinned add-ons and a Kubernetes provider for it."""

    TYPE_TOKEN = COMPONENT_TYPE

    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    node_security_group_id: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: k8s.Provider

    def declare(self, name: str, args: EksClusterArgs) -> dict[str, Any]:
        self._name = name
        self._args = args

        if not args.admin_role_arns and not args.grant_deployer_admin:
            pulumi.log.warn(
                f"{args.cluster_name}: no admin_role_arns; nobody (not even the deployer) can "
                "reach the Kubernetes API until an access entry is added",
                resource=self,
            )

        cluster_sg, node_sg = self._security_groups()
        cluster_role, cluster_role_policies = self._role(
            "cluster-role", iam.cluster_trust_policy(), iam.CLUSTER_MANAGED_POLICIES
        )
        node_role, node_role_policies = self._role(
            "node-role", iam.node_trust_policy(), iam.NODE_MANAGED_POLICIES
        )
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            # EKS writes to this fixed name; creating it first lets us set retention and KMS.
            name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_kms_key_arn,
            tags=self._tags("logs"),
            # Audit logs are evidence: kept under the same protection as the control plane.
            opts=self._child(protect=args.protect),
        )
        cluster = self._control_plane(cluster_role, cluster_sg, [log_group, *cluster_role_policies])

        admin_associations = self._admin_access(cluster)
        early_addons = [self._addon(cluster, addon) for addon in ADDONS_BEFORE_NODES]
        node_groups = [
            self._node_group(
                cluster, group, node_role, node_sg, [*node_role_policies, *early_addons]
            )
            for group in args.node_groups
        ]
        ebs_association = self._ebs_csi_identity(cluster)
        coredns = self._addon(cluster, "coredns", depends_on=node_groups)
        ebs_csi = self._addon(
            cluster,
            "aws-ebs-csi-driver",
            depends_on=[*node_groups, ebs_association, *early_addons],
        )

        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        self.endpoint = cluster.endpoint
        self.certificate_authority = cluster.certificate_authority.apply(lambda ca: ca.data or "")
        self.oidc_issuer_url = cluster.identities.apply(_oidc_issuer)
        self.cluster_security_group_id = cluster_sg.id
        self.node_security_group_id = node_sg.id
        self.node_role_arn = node_role.arn
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.name, cluster.endpoint, self.certificate_authority, cluster.arn
            ).apply(lambda values: _render_kubeconfig(*values))
        )
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            # Whoever uses this provider needs admin access granted, nodes to schedule on, DNS,
            # Pod Identity (early add-ons) and the EBS driver (Prometheus/Kafka volumes).
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*admin_associations, *node_groups, *early_addons, coredns, ebs_csi],
            ),
        )
        return {
            "cluster_name": self.cluster_name,
            "cluster_arn": self.cluster_arn,
            "endpoint": self.endpoint,
            "certificate_authority": self.certificate_authority,
            "oidc_issuer_url": self.oidc_issuer_url,
            "cluster_security_group_id": self.cluster_security_group_id,
            "node_security_group_id": self.node_security_group_id,
            "node_role_arn": self.node_role_arn,
            "kubeconfig": self.kubeconfig,
            # Recorded by URN: component outputs only reach the state, where a URN says the
            # same as a resource reference (which the offline harness cannot rehydrate).
            "provider": self.provider.urn,
        }

    # --- helpers: each declares one concern's children ------------------------------------

    def _tags(self, role: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return merge_tags(f"{self._args.cluster_name}-{role}", self._args.tags, extra or {})

    def _child(
        self,
        *,
        depends_on: Sequence[pulumi.Resource] = (),
        protect: bool = False,
        ignore_changes: list[str] | None = None,
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self,
            depends_on=list(depends_on),
            protect=protect,
            ignore_changes=ignore_changes,
        )

    def _role(
        self,
        role: str,
        trust: dict[str, Any] | pulumi.Output[dict[str, Any]],
        managed_policies: Sequence[str],
    ) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        iam_role = aws.iam.Role(
            f"{self._name}-{role}",
            assume_role_policy=pulumi.Output.from_input(trust).apply(json.dumps),
            tags=self._tags(role),
            opts=self._child(),
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{self._name}-{role}-{policy.rsplit('/', 1)[-1]}",
                role=iam_role.name,
                policy_arn=iam.managed_policy_arn(policy),
                opts=self._child(),
            )
            for policy in managed_policies
        ]
        return iam_role, attachments

    def _security_groups(self) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
        """The control plane's extra SG and the nodes' SG, admitting only each other.

        Nodes launched from our template carry only the node SG (EKS does not add its own
        cluster SG then), so the rules below are the whole control-plane <-> node contract.
        """
        args = self._args
        owned = {f"kubernetes.io/cluster/{args.cluster_name}": "owned"}
        # Both carry the cluster-owned tag: the load balancer controller finds target SGs by it.
        cluster_sg, node_sg = (
            aws.ec2.SecurityGroup(
                f"{self._name}-{role}",
                vpc_id=args.vpc_id,
                description=f"EKS {members} of {args.cluster_name}",
                tags=self._tags(role, owned),
                opts=self._child(),
            )
            for role, members in (("cluster-sg", "control plane"), ("node-sg", "nodes"))
        )
        ingress = [
            (cluster_sg, node_sg, 443, 443, "nodes-to-api", "Nodes and pods to the API server"),
            (node_sg, node_sg, None, None, "node-to-node", "Pod and node traffic within nodes"),
            (node_sg, cluster_sg, 443, 443, "api-to-webhooks", "API server to webhooks on 443"),
            (
                node_sg,
                cluster_sg,
                1025,
                65535,
                "api-to-kubelet",
                "API server to kubelet (10250) and extension servers",
            ),
        ]
        for target, source, from_port, to_port, role, description in ingress:
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-{role}",
                security_group_id=target.id,
                referenced_security_group_id=source.id,
                ip_protocol="-1" if from_port is None else "tcp",
                from_port=from_port,
                to_port=to_port,
                description=description,
                tags=self._tags(role),
                opts=self._child(),
            )
        for sg, role in ((cluster_sg, "cluster-egress"), (node_sg, "node-egress")):
            # Outbound only: image pulls, AWS APIs through the NAT/endpoints, kubelet traffic.
            aws.vpc.SecurityGroupEgressRule(
                f"{self._name}-{role}",
                security_group_id=sg.id,
                ip_protocol="-1",
                cidr_ipv4="0.0.0.0/0",
                description="All outbound",
                tags=self._tags(role),
                opts=self._child(),
            )
        return cluster_sg, node_sg

    def _control_plane(
        self,
        role: aws.iam.Role,
        cluster_sg: aws.ec2.SecurityGroup,
        depends_on: Sequence[pulumi.Resource],
    ) -> aws.eks.Cluster:
        args = self._args
        public = bool(args.public_access_cidrs)
        return aws.eks.Cluster(
            f"{self._name}-cluster",
            name=args.cluster_name,
            version=args.version,
            role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.private_subnet_ids,
                security_group_ids=[cluster_sg.id],
                endpoint_private_access=True,
                endpoint_public_access=public,
                # Left unset when closed: EKS would otherwise record its 0.0.0.0/0 default.
                public_access_cidrs=list(args.public_access_cidrs) if public else None,
            ),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                resources=["secrets"],
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(
                    key_arn=args.secrets_kms_key_arn
                ),
            ),
            enabled_cluster_log_types=list(CONTROL_PLANE_LOG_TYPES),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            # The add-ons below own vpc-cni/kube-proxy/coredns; EKS's unmanaged copies would
            # conflict with them.
            bootstrap_self_managed_addons=False,
            deletion_protection=args.protect,
            tags=self._tags("cluster"),
            opts=self._child(protect=args.protect, depends_on=depends_on),
        )

    def _admin_access(self, cluster: aws.eks.Cluster) -> list[aws.eks.AccessPolicyAssociation]:
        principals: list[tuple[str, pulumi.Input[str]]] = [
            (iam.role_name_from_arn(arn), arn) for arn in self._args.admin_role_arns
        ]
        if self._args.grant_deployer_admin:
            # An assumed-role session ARN is not a valid access-entry principal; the session
            # context's issuer is the IAM role behind it.
            invoke = pulumi.InvokeOutputOptions(parent=self)
            caller = aws.get_caller_identity_output(opts=invoke)
            session = aws.iam.get_session_context_output(arn=caller.arn, opts=invoke)
            principals.append(("deployer", session.issuer_arn))
        return [self._admin_entry(cluster, label, arn) for label, arn in principals]

    def _admin_entry(
        self, cluster: aws.eks.Cluster, label: str, principal_arn: pulumi.Input[str]
    ) -> aws.eks.AccessPolicyAssociation:
        entry = aws.eks.AccessEntry(
            f"{self._name}-admin-{label}",
            cluster_name=cluster.name,
            principal_arn=principal_arn,
            type="STANDARD",
            tags=self._tags(f"admin-{label}"),
            opts=self._child(),
        )
        return aws.eks.AccessPolicyAssociation(
            f"{self._name}-admin-{label}-policy",
            cluster_name=cluster.name,
            # Read from the entry so the association waits for it.
            principal_arn=entry.principal_arn,
            policy_arn=iam.eks_access_policy_arn(iam.CLUSTER_ADMIN_ACCESS_POLICY),
            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
            opts=self._child(),
        )

    def _launch_template(
        self, group: NodeGroupConfig, node_sg: aws.ec2.SecurityGroup
    ) -> aws.ec2.LaunchTemplate:
        args = self._args
        instance_tags = self._tags(group.name)
        return aws.ec2.LaunchTemplate(
            f"{self._name}-{group.name}-lt",
            description=f"EKS nodes of {args.cluster_name}/{group.name}",
            update_default_version=True,
            vpc_security_group_ids=[node_sg.id],
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                # Hop limit 1 keeps the node's instance role out of reach of pods: a pod's
                # packets cross one more hop (its veth) and are dropped. Pods get AWS credentials
                # from Pod Identity instead; the host-network add-ons (vpc-cni, kube-proxy, Pod
                # Identity agent) still reach IMDS. The EBS CSI driver falls back to the
                # Kubernetes API for instance id/zone (after a ~5 s IMDS timeout at start); that
                # source cannot count ENIs, so on Nitro types the per-node volume limit is
                # optimistic. Raise to 2 only if that bites: it re-exposes the node role to pods.
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=_ROOT_DEVICE,
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=group.disk_size_gib,
                        volume_type="gp3",
                        encrypted="true",
                        kms_key_id=args.ebs_kms_key_arn,
                        delete_on_termination="true",
                    ),
                )
            ],
            # Node-group tags stay on the node group; instances, volumes and ENIs get theirs here.
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=instance_tags)
                for kind in ("instance", "volume", "network-interface")
            ],
            tags=self._tags(f"{group.name}-lt"),
            opts=self._child(),
        )

    def _node_group(
        self,
        cluster: aws.eks.Cluster,
        group: NodeGroupConfig,
        node_role: aws.iam.Role,
        node_sg: aws.ec2.SecurityGroup,
        depends_on: Sequence[pulumi.Resource],
    ) -> aws.eks.NodeGroup:
        template = self._launch_template(group, node_sg)
        # No access entry for the node role: EKS creates the EC2_LINUX entry for managed groups.
        return aws.eks.NodeGroup(
            f"{self._name}-{group.name}",
            cluster_name=cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=self._args.private_subnet_ids,
            instance_types=list(group.instance_types),
            capacity_type=group.capacity_type,
            ami_type=iam.node_ami_type(group.instance_types),
            # Follow the control plane: a version bump in config rolls the nodes after it.
            version=cluster.version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=group.min_size,
                max_size=group.max_size,
                desired_size=group.desired_size,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id,
                version=template.latest_version.apply(str),
            ),
            labels={"platform/node-group": group.name},
            tags=self._tags(group.name),
            opts=self._child(
                depends_on=depends_on,
                # An autoscaler owns the current size; Pulumi only sets it at creation.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

    def _ebs_csi_identity(self, cluster: aws.eks.Cluster) -> aws.eks.PodIdentityAssociation:
        role, attachments = self._role(
            "ebs-csi-role",
            cluster.arn.apply(iam.pod_identity_trust_policy),
            (iam.EBS_CSI_MANAGED_POLICY,),
        )
        kms_policy = aws.iam.RolePolicy(
            f"{self._name}-ebs-csi-kms",
            role=role.name,
            policy=pulumi.Output.from_input(self._args.ebs_kms_key_arn).apply(
                lambda arn: json.dumps(iam.ebs_kms_policy(arn))
            ),
            opts=self._child(),
        )
        return aws.eks.PodIdentityAssociation(
            f"{self._name}-ebs-csi",
            cluster_name=cluster.name,
            namespace=KUBE_SYSTEM_NAMESPACE,
            service_account=EBS_CSI_SERVICE_ACCOUNT,
            role_arn=role.arn,
            tags=self._tags("ebs-csi"),
            opts=self._child(depends_on=[*attachments, kms_policy]),
        )

    def _addon(
        self,
        cluster: aws.eks.Cluster,
        addon: str,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> aws.eks.Addon:
        settings = ADDON_CONFIGURATION.get(addon)
        return aws.eks.Addon(
            f"{self._name}-{addon}",
            cluster_name=cluster.name,
            addon_name=addon,
            addon_version=self._args.addon_versions[addon],
            configuration_values=json.dumps(settings, sort_keys=True) if settings else None,
            # The add-on's pinned settings win over hand edits on create and on upgrade.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=self._tags(addon),
            opts=self._child(depends_on=depends_on),
        )


def _oidc_issuer(identities: Sequence[aws.eks.outputs.ClusterIdentity] | None) -> str:
    for identity in identities or ():
        for oidc in identity.oidcs or ():
            if oidc.issuer:
                return oidc.issuer
    return ""


def _render_kubeconfig(cluster_name: str, endpoint: str, ca_data: str, arn: str) -> str:
    document = iam.kubeconfig_document(
        cluster_name=cluster_name,
        endpoint=endpoint,
        certificate_authority_data=ca_data,
        region=iam.region_from_arn(arn),
    )
    return json.dumps(document, indent=2)
