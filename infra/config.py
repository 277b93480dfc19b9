"""Typed stack configuration: read once, validated, frozen.

`stacks/Pulumi.<env>.yaml` holds the `platform:*` keys below. `load_stack_config()` turns them into
frozen pydantic models, or raises `ConfigError` naming every bad key, its value and what is
allowed, before any resource is declared. Components never read `pulumi.Config` themselves: they
get Args built from these objects.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from infra.contracts import ENVIRONMENTS
from infra.platform.charts import PROMETHEUS_RETENTION

PROJECT = "platform"
REPO_ROOT = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO_ROOT / "stacks"

# Versions we have tested against. "Pinned" means an exact version from these sets: a bare major
# ("16") or "latest" would let AWS pick a different version on the next replacement.
SUPPORTED_EKS_VERSIONS: tuple[str, ...] = ("1.31", "1.32", "1.33")
SUPPORTED_KAFKA_VERSIONS: tuple[str, ...] = ("3.6.0", "3.7.x", "3.8.x", "3.9.x")
SUPPORTED_POSTGRES_VERSIONS: tuple[str, ...] = ("15.10", "16.6", "16.8", "17.2", "17.4")

# The regions a stack may use, each with the zone letters its subnets go to. Subnets need zone
# names when the program is declared (resource names and the CIDR layout stay stable in
# previews), and the letters differ by region: ap-northeast-1 has no "b" for accounts opened in
# the last decade, ca-central-1 has no "c". Only commercial regions: the IAM partition is fixed
# (`infra.cluster.iam.PARTITION`). A region is added here after checking its zones.
SUPPORTED_REGIONS: dict[str, tuple[str, ...]] = {
    "us-east-1": ("a", "b", "c"),
    "us-east-2": ("a", "b", "c"),
    "us-west-2": ("a", "b", "c"),
    "ca-central-1": ("a", "b", "d"),
    "eu-west-1": ("a", "b", "c"),
    "eu-west-2": ("a", "b", "c"),
    "eu-central-1": ("a", "b", "c"),
    "eu-north-1": ("a", "b", "c"),
    "ap-northeast-1": ("a", "c", "d"),
    "ap-southeast-1": ("a", "b", "c"),
    "ap-southeast-2": ("a", "b", "c"),
}

FLAVOURS: tuple[str, ...] = ("aws", "local")
# What each flavour runs the cluster, Kafka and PostgreSQL on. The three move together: MSK IAM
# auth and the Secrets Manager store need EKS Pod Identity, and the in-cluster data services
# exist for a kubeconfig cluster, so a mix (EKS with in-cluster Kafka, ...) is not supported.
FLAVOUR_MODES: dict[str, dict[str, str]] = {
    "aws": {"cluster.mode": "eks", "kafka.mode": "msk", "database.mode": "rds"},
    "local": {
        "cluster.mode": "kubeconfig",
        "kafka.mode": "in-cluster",
        "database.mode": "in-cluster",
    },
}

# Add-on versions are pinned per cluster version: EKS refuses an add-on built for another minor.
EKS_ADDON_VERSIONS: dict[str, dict[str, str]] = {
    "1.31": {
        "vpc-cni": "v1.19.2-eksbuild.1",
        "coredns": "v1.11.4-eksbuild.2",
        "kube-proxy": "v1.31.3-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.4-eksbuild.1",
        "aws-ebs-csi-driver": "v1.38.1-eksbuild.1",
    },
    "1.32": {
        "vpc-cni": "v1.19.2-eksbuild.5",
        "coredns": "v1.11.4-eksbuild.2",
        "kube-proxy": "v1.32.0-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.4-eksbuild.1",
        "aws-ebs-csi-driver": "v1.38.1-eksbuild.2",
    },
    "1.33": {
        "vpc-cni": "v1.19.5-eksbuild.1",
        "coredns": "v1.12.1-eksbuild.2",
        "kube-proxy": "v1.33.0-eksbuild.2",
        "eks-pod-identity-agent": "v1.3.7-eksbuild.2",
        "aws-ebs-csi-driver": "v1.44.0-eksbuild.1",
    },
}


# Retention values CloudWatch Logs accepts; anything else fails at apply time, so we fail earlier.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

ON_DEMAND_FLOOR = 2
"""Prod keeps at least this many on-demand nodes whatever the autoscaler decides."""


class ConfigError(ValueError):
    """Invalid stack configuration. The message names each key, its value and what is allowed."""


class _Model(BaseModel):
    """Frozen, camelCase-aliased, and strict about unknown keys (a typo must not be ignored)."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
    )


def _one_of(allowed: tuple[str, ...]) -> AfterValidator:
    """A field validator refusing any value outside `allowed` (e.g. an unpinned version)."""

    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r}; allowed: {', '.join(allowed)}")
        return value

    return AfterValidator(check)


def _parse_network(value: str, field: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"{value!r} is not a valid IPv4 CIDR for {field} ({exc}); "
            "allowed: a network address with prefix, e.g. 10.20.0.0/16"
        ) from None


def _ipv4_networks(field: str) -> AfterValidator:
    """A field validator: each entry is an IPv4 network with prefix (errors name `field`)."""

    def check(value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            _parse_network(cidr, field)
        return value

    return AfterValidator(check)


class NetworkConfig(_Model):
    """The VPC and its three subnet tiers."""

    vpc_cidr: str = Field(description="VPC CIDR, /16 to /20, split into public/private/isolated.")
    az_count: int = Field(description="Availability zones used: 2 or 3 (prod: 3).")
    nat_gateways: Literal["single", "per-az"] = Field(
        description="One NAT gateway for the VPC (cheap) or one per AZ (no cross-AZ dependency)."
    )
    flow_logs_retention_days: int = Field(30, description="CloudWatch retention of VPC flow logs.")
    allowed_cidrs: Annotated[tuple[str, ...], _ipv4_networks("allowedCidrs")] = Field(
        (),
        description="Extra CIDRs (on-prem, VPN) that must not overlap the VPC; used for peering.",
    )

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, value: str) -> str:
        network = _parse_network(value, "vpcCidr")
        if not 16 <= network.prefixlen <= 20:
            raise ValueError(f"{value!r} has prefix /{network.prefixlen}; allowed: /16 to /20")
        if not network.is_private:
            raise ValueError(f"{value!r} is not private; allowed: RFC 1918 ranges")
        return value

    @field_validator("az_count")
    @classmethod
    def _az_count(cls, value: int) -> int:
        if value not in (2, 3):
            raise ValueError(f"{value} AZs; allowed: 2 or 3")
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> NetworkConfig:
        vpc = ipaddress.IPv4Network(self.vpc_cidr)
        for cidr in self.allowed_cidrs:
            if ipaddress.IPv4Network(cidr).overlaps(vpc):
                raise ValueError(
                    f"allowedCidrs entry {cidr!r} overlaps vpcCidr {self.vpc_cidr!r}; "
                    "allowed: ranges disjoint from the VPC"
                )
        return self


class NodeGroupConfig(_Model):
    """One EKS managed node group (launched through our launch template)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")
    instance_types: tuple[str, ...] = Field(min_length=1)
    min_size: int = Field(ge=0, description="0 lets the autoscaler remove the group's last node.")
    max_size: int = Field(ge=1)
    desired_size: int = Field(ge=0)
    disk_size_gib: int = Field(50, ge=20, le=1000)
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"

    @model_validator(mode="after")
    def _sizes(self) -> NodeGroupConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"node group {self.name!r}: need minSize <= desiredSize <= maxSize, got "
                f"{self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


class ClusterConfig(_Model):
    """The Kubernetes cluster: EKS, or an existing cluster from a kubeconfig (local flavour)."""

    mode: Literal["eks", "kubeconfig"] = "eks"
    version: Annotated[str, _one_of(SUPPORTED_EKS_VERSIONS)] = Field(
        "1.32", description="EKS minor version, pinned."
    )
    public_access_cidrs: tuple[str, ...] = Field(
        (), description="CIDRs allowed on the public API endpoint; empty closes it."
    )
    node_groups: tuple[NodeGroupConfig, ...] = ()
    admin_role_arns: tuple[str, ...] = Field(
        (), description="IAM roles granted cluster-admin through EKS access entries."
    )
    grant_deployer_admin: bool = Field(
        True, description="Grant cluster-admin to the IAM role that runs `pulumi up`."
    )
    kubeconfig_context: str | None = Field(
        None, description="kubeconfig context for mode=kubeconfig (kind/k3d/minikube)."
    )
    log_retention_days: int = Field(90, ge=1, le=3653, description="Control-plane log retention.")

    @field_validator("public_access_cidrs")
    @classmethod
    def _public_cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            network = _parse_network(cidr, "publicAccessCidrs")
            if network.prefixlen == 0:
                raise ValueError(f"{cidr!r} opens the API to the internet; allowed: narrower CIDRs")
        return value

    @model_validator(mode="after")
    def _eks_needs_nodes(self) -> ClusterConfig:
        if self.mode == "eks" and not self.node_groups:
            raise ValueError("mode 'eks' needs at least one entry in nodeGroups")
        if self.mode == "kubeconfig" and not self.kubeconfig_context:
            raise ValueError("mode 'kubeconfig' needs kubeconfigContext (e.g. kind-platform)")
        names = [group.name for group in self.node_groups]
        if len(names) != len(set(names)):
            raise ValueError(f"nodeGroups names must be unique, got {names}")
        return self

    @property
    def addon_versions(self) -> dict[str, str]:
        return EKS_ADDON_VERSIONS[self.version]


class KafkaConfig(_Model):
    """Kafka: Amazon MSK, or Strimzi in the cluster (local flavour)."""

    mode: Literal["msk", "in-cluster"] = "msk"
    version: Annotated[str, _one_of(SUPPORTED_KAFKA_VERSIONS)] = Field(
        "3.6.0", description="MSK Kafka version, pinned."
    )
    broker_count: int = Field(3, ge=1, le=30)
    instance_type: str = Field("kafka.m7g.large", pattern=r"^kafka\.[a-z0-9]+\.[a-z0-9]+$")
    storage_gib: int = Field(100, ge=1, le=16384)
    max_storage_gib: int = Field(500, ge=1, le=16384)
    log_retention_days: int = Field(14, ge=1, le=3650, description="Broker log group retention.")

    @model_validator(mode="after")
    def _storage(self) -> KafkaConfig:
        if self.max_storage_gib < self.storage_gib:
            raise ValueError(
                f"maxStorageGib {self.max_storage_gib} < storageGib {self.storage_gib}; "
                "allowed: maxStorageGib >= storageGib"
            )
        return self

    @property
    def replication_factor(self) -> int:
        """3 where there are enough brokers; a 1- or 2-broker dev cluster matches its size."""
        return min(3, self.broker_count)

    @property
    def min_insync_replicas(self) -> int:
        return max(1, self.replication_factor - 1)


class DatabaseConfig(_Model):
    """PostgreSQL: Amazon RDS, or CloudNativePG in the cluster (local flavour)."""

    mode: Literal["rds", "in-cluster"] = "rds"
    engine_version: Annotated[str, _one_of(SUPPORTED_POSTGRES_VERSIONS)] = Field(
        "16.6", description="PostgreSQL version, pinned major.minor."
    )
    instance_class: str = Field("db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    allocated_storage_gib: int = Field(20, ge=20, le=65536)
    max_allocated_storage_gib: int = Field(100, ge=20, le=65536)
    multi_az: bool = False
    backup_retention_days: int = Field(7, ge=0, le=35)
    database_name: str = Field("platform", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    performance_insights_retention_days: int = Field(7, description="7 (free tier) or 31..731")

    @field_validator("backup_retention_days")
    @classmethod
    def _backups(cls, value: int) -> int:
        if value < 7:
            raise ValueError(f"{value} days; allowed: 7 to 35 (30 or more in prod)")
        return value

    @model_validator(mode="after")
    def _storage(self) -> DatabaseConfig:
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise ValueError(
                f"maxAllocatedStorageGib {self.max_allocated_storage_gib} < allocatedStorageGib "
                f"{self.allocated_storage_gib}; allowed: max >= allocated"
            )
        return self

    @property
    def parameter_group_family(self) -> str:
        return f"postgres{self.engine_version.split('.')[0]}"


_HOST_NAME = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
ACM_CERTIFICATE_ARN = r"^arn:aws:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$"
ROUTE53_ZONE_ID = r"^Z[A-Z0-9]{1,31}$"
INGRESS_SCHEMES: tuple[str, ...] = ("internal", "internet-facing")


class IngressConfig(_Model):
    """How the events API is published: DNS name -> ALB (HTTPS only) -> Service -> pods."""

    hosts: tuple[Annotated[str, Field(pattern=_HOST_NAME)], ...] = Field(
        min_length=1, description="Host names the API answers on; each inside `zoneName`."
    )
    scheme: Literal["internal", "internet-facing"] = Field(
        "internal", description="internal: reachable from the VPC (and peers) only."
    )
    allowed_cidrs: Annotated[tuple[str, ...], _ipv4_networks("ingress.allowedCidrs")] = Field(
        min_length=1, description="Client CIDRs the load balancer's security group admits."
    )
    certificate_arn: str | None = Field(
        None, pattern=ACM_CERTIFICATE_ARN, description="ACM certificate (aws flavour: required)."
    )
    zone_name: str = Field(pattern=_HOST_NAME, description="The Route 53 zone external-dns uses.")
    zone_id: str | None = Field(
        None, pattern=ROUTE53_ZONE_ID, description="Its hosted zone id (aws flavour: required)."
    )

    @model_validator(mode="after")
    def _hosts_in_zone(self) -> IngressConfig:
        outside = [h for h in self.hosts if not h.endswith(f".{self.zone_name}")]
        if outside:
            raise ValueError(
                f"hosts {outside} are not inside zoneName {self.zone_name!r}; allowed: names "
                f"ending in .{self.zone_name}"
            )
        return self


class NodeAutoscalingConfig(_Model):
    """cluster-autoscaler's limits (it resizes the managed node groups within their bounds)."""

    max_nodes_total: int = Field(ge=1, le=1000, description="Hard cap over all node groups.")
    scale_down_utilization_threshold: float = Field(
        0.5, gt=0, lt=1, description="A node below this requested share is a removal candidate."
    )
    scale_down_unneeded_minutes: int = Field(
        10, ge=1, le=120, description="How long a node stays unneeded before it is removed."
    )


ALERT_SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")


class AlertReceiverConfig(_Model):
    """Where alerts of some severities go; the credential comes through External Secrets."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,40}$")
    kind: Literal["slack", "pagerduty"]
    severities: tuple[Literal["critical", "warning", "info"], ...] = Field(min_length=1)
    slack_channel: str | None = Field(None, pattern=r"^#[a-z0-9_-]{1,80}$")

    @model_validator(mode="after")
    def _slack_channel(self) -> AlertReceiverConfig:
        if self.kind == "slack" and not self.slack_channel:
            raise ValueError(f"receiver {self.name!r}: kind slack needs slackChannel (#name)")
        return self


class ObservabilityConfig(_Model):
    """Logs, alerts and traces: where they go and how long they stay."""

    log_retention_days: int = Field(description="CloudWatch retention of the pods' logs.")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"{value}; allowed: {', '.join(str(d) for d in LOG_RETENTION_DAYS)} (CloudWatch)"
            )
        return value

    alert_receivers: tuple[AlertReceiverConfig, ...] = Field(
        (), description="Alertmanager receivers by severity; none: alerts stay in Alertmanager."
    )
    trace_storage_gib: int | None = Field(
        None, ge=1, le=1000, description="Jaeger's persistent volume; None keeps traces in memory."
    )

    @model_validator(mode="after")
    def _receivers(self) -> ObservabilityConfig:
        names = [r.name for r in self.alert_receivers]
        if len(names) != len(set(names)):
            raise ValueError(f"alertReceivers names must be unique, got {names}")
        return self


class ProtectionConfig(_Model):
    """Safety switches. Prod must keep all of them on."""

    deletion_protection: bool = True
    protect_resources: bool = Field(True, description="Pulumi `protect` on stateful resources.")
    final_snapshot: bool = True
    key_deletion_window_days: int = Field(
        30, ge=7, le=30, description="Days a scheduled KMS key deletion can still be cancelled."
    )


class PrometheusTierConfig(_Model):
    """How long Prometheus keeps samples and the volume each replica keeps them on."""

    retention: str = Field(description="A Prometheus duration such as 15d.")
    storage_gib: int = Field(ge=1, le=16384)

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if not PROMETHEUS_RETENTION.match(value):
            raise ValueError(f"{value!r}; allowed: a Prometheus duration such as 15d")
        return value


class TierConfig(_Model):
    """What the environment buys in availability and capacity, stated per stack (not derived
    from its name)."""

    high_availability: bool = Field(
        description="Two or more replicas of every platform controller (Argo CD with redis-ha, "
        "Prometheus, Alertmanager, collectors, operators) and app rollouts that never remove a "
        "pod before its replacement is ready."
    )
    min_api_replicas: int = Field(
        ge=1, description="Fewest replicas of the events API; the GitOps catalog checks against it."
    )
    prometheus: PrometheusTierConfig


class RegistryConfig(_Model):
    """The ECR repositories the pipeline pushes to and every environment pulls from.

    Images are built once and promoted by tag (`platform gitops set-image`), so one registry
    serves all environments of an account: exactly one stack owns it (`create: true`).
    """

    create: bool = Field(True, description="This stack declares (owns) the repositories.")
    repository_prefix: str = Field(
        "event-platform", pattern=r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$", description="`<prefix>/<app>`"
    )
    protect: bool = Field(
        True, description="Pulumi `protect`: the repositories hold every environment's images."
    )


class GitOpsConfig(_Model):
    """Where ArgoCD in this environment pulls `gitops/<env>` from."""

    repo_url: str = Field(pattern=r"^(https://|ssh://|git@)\S+$")
    target_revision: str = "main"


class LocalStackConfig(_Model):
    """The AWS provider's endpoint override for the `localstack` stack."""

    endpoint: str = Field("http://127.0.0.1:4566", pattern=r"^https?://\S+$")


class PlatformConfig(_Model):
    """Everything one stack declares. Built only through `load_stack_config`."""

    stack: str
    region: str
    flavour: Literal["aws", "local"] = Field(
        description="aws: EKS, MSK and RDS; local: a kubeconfig cluster with in-cluster Kafka "
        "and PostgreSQL, and LocalStack for the AWS API."
    )
    tier: TierConfig
    network: NetworkConfig
    cluster: ClusterConfig
    kafka: KafkaConfig
    database: DatabaseConfig
    protection: ProtectionConfig = ProtectionConfig()
    gitops: GitOpsConfig
    registry: RegistryConfig = RegistryConfig()
    ingress: IngressConfig
    node_autoscaling: NodeAutoscalingConfig | None = None
    observability: ObservabilityConfig
    tags: dict[str, str] = Field(default_factory=dict)
    localstack: LocalStackConfig | None = None

    @property
    def availability_zones(self) -> list[str]:
        """The zones the subnets go to (`azCount` of the region's listed zones)."""
        return [
            f"{self.region}{z}" for z in SUPPORTED_REGIONS[self.region][: self.network.az_count]
        ]

    @property
    def base_tags(self) -> dict[str, str]:
        return {"project": PROJECT, "stack": self.stack, "managed-by": "pulumi"}

    @property
    def name_prefix(self) -> str:
        """Prefix of every physical name: short enough for RDS/MSK/EKS name limits."""
        return f"plat-{self.stack}"


# --- Cross-field rules that need the whole stack ------------------------------------------------


def _stack_rules(cfg: PlatformConfig) -> list[str]:
    problems: list[str] = []
    if cfg.stack not in ENVIRONMENTS:
        problems.append(f"stack: {cfg.stack!r} is unknown; allowed: {', '.join(ENVIRONMENTS)}")
    zones = SUPPORTED_REGIONS.get(cfg.region)
    if zones is None:
        problems.append(
            f"aws:region: {cfg.region!r} is not supported; allowed: {', '.join(SUPPORTED_REGIONS)}"
        )
    elif cfg.network.az_count > len(zones):
        problems.append(
            f"platform:network.azCount: {cfg.network.az_count}; region {cfg.region} has the zones "
            f"{', '.join(zones)}, allowed: 2 to {len(zones)}"
        )
    if cfg.kafka.mode == "msk" and cfg.kafka.broker_count % cfg.network.az_count:
        problems.append(
            f"platform:kafka.brokerCount: {cfg.kafka.broker_count} is not a multiple of "
            f"platform:network.azCount {cfg.network.az_count}; allowed: "
            f"{', '.join(str(cfg.network.az_count * n) for n in (1, 2, 3))}, ..."
        )
    problems += _flavour_rules(cfg)
    problems += _prod_rules(cfg)
    for key in cfg.tags:
        if key in cfg.base_tags:
            problems.append(f"platform:tags.{key}: reserved base tag; choose another key")
    return problems


def _flavour_rules(cfg: PlatformConfig) -> list[str]:
    """The cluster, Kafka and database modes follow the flavour; LocalStack only for `local`."""
    problems: list[str] = []
    modes = {
        "cluster.mode": cfg.cluster.mode,
        "kafka.mode": cfg.kafka.mode,
        "database.mode": cfg.database.mode,
    }
    for key, wanted in FLAVOUR_MODES[cfg.flavour].items():
        if modes[key] != wanted:
            problems.append(
                f"platform:{key}: {modes[key]!r} does not go with platform:flavour "
                f"{cfg.flavour!r}; allowed: {wanted!r} (the three modes move together: "
                + ", ".join(
                    f"{flavour}: {'/'.join(by_key.values())}"
                    for flavour, by_key in FLAVOUR_MODES.items()
                )
                + ")"
            )
    if cfg.flavour == "aws":
        for key, value in (
            ("ingress.certificateArn", cfg.ingress.certificate_arn),
            ("ingress.zoneId", cfg.ingress.zone_id),
            ("nodeAutoscaling", cfg.node_autoscaling),
        ):
            if value is None:
                problems.append(f"platform:{key}: missing; flavour 'aws' needs it")
        if cfg.node_autoscaling is not None:
            ceiling = sum(group.max_size for group in cfg.cluster.node_groups)
            if cfg.node_autoscaling.max_nodes_total > ceiling:
                problems.append(
                    f"platform:nodeAutoscaling.maxNodesTotal: "
                    f"{cfg.node_autoscaling.max_nodes_total} exceeds the node groups' maxSize "
                    f"sum {ceiling}; allowed: 1..{ceiling}"
                )
    if cfg.flavour == "local":
        # The local flavour's AWS API is LocalStack, whose free edition has no ECR.
        if cfg.localstack is None:
            problems.append("platform:localstack: missing; flavour 'local' needs its endpoint")
        if cfg.registry.create:
            problems.append(
                "platform:registry.create: true; LocalStack's free edition has no ECR, "
                "allowed: false"
            )
    elif cfg.localstack is not None:
        problems.append(
            "platform:localstack: set with flavour 'aws'; allowed: only with flavour 'local'"
        )
    return problems


def _prod_rules(cfg: PlatformConfig) -> list[str]:
    """Guard rails of the production stack.

    Keyed on the stack's name on purpose: they hold whatever that stack's config says, so a tier
    or flavour edit cannot switch them off.
    """
    if cfg.stack != "prod":
        return []
    problems: list[str] = []
    if cfg.flavour != "aws":
        problems.append(f"platform:flavour: {cfg.flavour!r}; prod must use 'aws'")
    if not cfg.tier.high_availability:
        problems.append("platform:tier.highAvailability: false; prod must be true")
    if cfg.tier.min_api_replicas < 2:
        problems.append(
            f"platform:tier.minApiReplicas: {cfg.tier.min_api_replicas}; prod needs >= 2"
        )
    if cfg.network.az_count != 3:
        problems.append(f"platform:network.azCount: {cfg.network.az_count}; prod must use 3")
    if cfg.network.nat_gateways != "per-az":
        problems.append("platform:network.natGateways: 'single'; prod must use 'per-az'")
    for key in ("deletion_protection", "protect_resources", "final_snapshot"):
        if not getattr(cfg.protection, key):
            problems.append(f"platform:protection.{to_camel(key)}: false; prod must be true")
    if cfg.protection.key_deletion_window_days != 30:
        problems.append(
            "platform:protection.keyDeletionWindowDays: "
            f"{cfg.protection.key_deletion_window_days}; prod must keep 30"
        )
    if not cfg.database.multi_az:
        problems.append("platform:database.multiAz: false; prod must be true")
    floor = sum(g.min_size for g in cfg.cluster.node_groups if g.capacity_type == "ON_DEMAND")
    if floor < ON_DEMAND_FLOOR:
        problems.append(
            f"platform:cluster.nodeGroups: {floor} on-demand nodes at minimum; prod must keep "
            f">= {ON_DEMAND_FLOOR} (ON_DEMAND groups' minSize)"
        )
    if cfg.observability.trace_storage_gib is None:
        problems.append("platform:observability.traceStorageGib: missing; prod keeps traces")
    if not any(r.kind == "pagerduty" for r in cfg.observability.alert_receivers):
        problems.append(
            "platform:observability.alertReceivers: no pagerduty receiver; prod must page someone"
        )
    if cfg.database.backup_retention_days < 30:
        problems.append(
            f"platform:database.backupRetentionDays: {cfg.database.backup_retention_days}; "
            "prod must keep 30 to 35 days"
        )
    return problems


def _format_validation_error(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"])
        key = f"platform:{loc}" if loc not in ("stack", "region") else loc
        value = err.get("input")
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; keys are camelCase)"
        elif err["type"] == "literal_error":
            message = f"{message}"
        lines.append(f"{key}: {message} (got {value!r})")
    return lines


def load_stack_config(stack: str, raw: Mapping[str, Any]) -> PlatformConfig:
    """Build the typed config from the `config:` mapping of a stack file.

    `raw` uses the Pulumi keys as written in `Pulumi.<stack>.yaml` (`aws:region`,
    `platform:network`, ...). Raises ConfigError listing every problem at once.
    """
    unknown = [key for key in raw if not (key.startswith(f"{PROJECT}:") or key.startswith("aws:"))]
    problems = [f"{key}: unknown namespace; allowed: 'platform:' and 'aws:'" for key in unknown]
    data: dict[str, Any] = {"stack": stack, "region": raw.get("aws:region", "")}
    for key, value in raw.items():
        if key.startswith(f"{PROJECT}:"):
            data[key.split(":", 1)[1]] = value
    try:
        cfg = PlatformConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_format_validation_error(exc))
        raise ConfigError(_render(stack, problems)) from None
    problems.extend(_stack_rules(cfg))
    if problems:
        raise ConfigError(_render(stack, problems))
    return cfg


def _render(stack: str, problems: list[str]) -> str:
    body = "\n".join(f"  - {p}" for p in problems)
    return f"invalid config for stack {stack!r} ({len(problems)} problem(s)):\n{body}"


def read_stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> dict[str, Any]:
    """The raw `config:` mapping of `stacks/Pulumi.<stack>.yaml`."""
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise ConfigError(f"no stack file {path.name}; allowed stacks: {', '.join(ENVIRONMENTS)}")
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path.name}: 'config' must be a mapping")
    return config


def load_stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> PlatformConfig:
    """Read and validate a committed stack file (tests, `platform plan`, the renderer)."""
    return load_stack_config(stack, read_stack_file(stack, stacks_dir))


def load_from_pulumi() -> PlatformConfig:
    """Read the running stack's config through the Pulumi SDK (the path `pulumi up` takes)."""
    import pulumi

    stack = pulumi.get_stack()
    raw: dict[str, Any] = {}
    aws_region = pulumi.Config("aws").get("region")
    if aws_region:
        raw["aws:region"] = aws_region
    platform = pulumi.Config(PROJECT)
    for field_name, field in PlatformConfig.model_fields.items():
        if field_name in ("stack", "region"):
            continue
        key = field.alias or to_camel(field_name)
        try:
            value = platform.get_object(key)
        except pulumi.ConfigTypeError:  # not JSON: a plain string such as `flavour: aws`
            value = platform.get(key)
        if value is not None:
            raw[f"{PROJECT}:{key}"] = value
    return load_stack_config(stack, raw)
