"""Amazon MSK: a private, encrypted Kafka cluster that only the EKS nodes reach, IAM auth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from infra.component import PlatformComponent
from infra.contracts import MSK_IAM_PORT, SEVEN_DAYS_MS
from infra.data.kafka_properties import (
    render_server_properties,
    server_properties,
    validate_replication,
)
from infra.naming import merge_tags

# Brokers listen for SASL/IAM over TLS on `contracts.MSK_IAM_PORT` (the only listener we enable).

STORAGE_TARGET_UTILIZATION = 60.0
"""Grow broker volumes when disk use passes this percentage (MSK's recommended range is 50-60)."""

EnhancedMonitoring = Literal[
    "DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"
]


@dataclass(frozen=True)
class KafkaClusterArgs:
    """Inputs of `KafkaCluster`.

    Attributes:
        cluster_name: Physical MSK cluster name (also names the log group and security group).
        kafka_version: Pinned Kafka version, e.g. "3.6.0".
        broker_count: Number of brokers; a multiple of `len(subnet_ids)` (MSK spreads them evenly).
        instance_type: Broker instance type, e.g. "kafka.m7g.large".
        storage_gib: Initial EBS volume per broker.
        max_storage_gib: Ceiling for storage autoscaling per broker (>= storage_gib).
        replication_factor: `default.replication.factor` (see `KafkaConfig.replication_factor`).
        min_insync_replicas: `min.insync.replicas` (see `KafkaConfig.min_insync_replicas`).
        vpc_id: VPC of the security group.
        subnet_ids: Private subnets, one per AZ; the brokers' ENIs are placed here.
        client_security_group_ids: Security groups allowed to connect (the EKS node SG).
        kms_key_arn: Customer KMS key for encryption at rest.
        log_retention_days: CloudWatch retention of the broker logs.
        logs_kms_key_arn: Optional KMS key for the broker log group (its key policy must admit
            CloudWatch Logs); None keeps CloudWatch's own encryption.
        tags: Base tags (project, stack, managed-by) plus user tags.
        protect: Pulumi `protect` on the cluster (prod).
        retention_ms: Default topic retention (`log.retention.ms`); 7 days.
        enhanced_monitoring: CloudWatch metric level.
        allow_prometheus_scrape: Also admit the client SGs on the open-monitoring exporter ports
            (11001 JMX, 11002 node) so an in-cluster Prometheus can scrape the brokers.
    """

    cluster_name: str
    kafka_version: str
    broker_count: int
    instance_type: str
    storage_gib: int
    max_storage_gib: int
    replication_factor: int
    min_insync_replicas: int
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    client_security_group_ids: Sequence[pulumi.Input[str]]
    kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    logs_kms_key_arn: pulumi.Input[str] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    protect: bool = False
    retention_ms: int = SEVEN_DAYS_MS
    enhanced_monitoring: EnhancedMonitoring = "PER_TOPIC_PER_BROKER"
    allow_prometheus_scrape: bool = False

    def validate(self) -> None:
        """Raise `ValueError` naming the field, its value and what is allowed."""
        if not self.subnet_ids:
            raise ValueError("subnet_ids: empty; allowed: one private subnet per AZ (2 or 3)")
        if self.broker_count < 1 or self.broker_count % len(self.subnet_ids):
            raise ValueError(
                f"broker_count: {self.broker_count} is not a multiple of the "
                f"{len(self.subnet_ids)} subnet_ids; allowed: "
                f"{', '.join(str(len(self.subnet_ids) * n) for n in (1, 2, 3))}, ..."
            )
        if not 1 <= self.storage_gib <= 16384:
            raise ValueError(f"storage_gib: {self.storage_gib}; allowed: 1 to 16384")
        if not self.storage_gib <= self.max_storage_gib <= 16384:
            raise ValueError(
                f"max_storage_gib: {self.max_storage_gib} < storage_gib {self.storage_gib} or "
                "above 16384; allowed: storage_gib to 16384"
            )
        validate_replication(self.broker_count, self.replication_factor, self.min_insync_replicas)
        if not self.client_security_group_ids:
            raise ValueError(
                "client_security_group_ids: empty; allowed: the EKS node security group (nothing "
                "else may reach the brokers, and CIDR sources are not offered)"
            )
        if self.log_retention_days < 1:
            raise ValueError(f"log_retention_days: {self.log_retention_days}; allowed: 1 or more")
        if not self.cluster_name or len(self.cluster_name) > 64:
            raise ValueError(f"cluster_name: {self.cluster_name!r}; allowed: 1 to 64 characters")


class KafkaCluster(PlatformComponent[KafkaClusterArgs]):
    """An MSK cluster reachable only from the given client security groups, IAM auth over TLS."""

    TYPE_TOKEN = "platform:data:KafkaCluster"

    cluster_arn: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    bootstrap_brokers_iam: pulumi.Output[str]
    cluster_uuid: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def declare(self, name: str, args: KafkaClusterArgs) -> dict[str, Any]:
        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"MSK brokers of {args.cluster_name}: IAM/TLS from cluster nodes only",
            vpc_id=args.vpc_id,
            ingress=self._ingress_rules(args),
            # No egress rules: security groups are stateful, so replies to client connections
            # flow without one, and brokers open no connections into the VPC themselves.
            tags=merge_tags(f"{args.cluster_name}-msk", args.tags, {}),
            opts=self.child,
        )

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-broker-logs",
            name=f"/aws/msk/{args.cluster_name}/broker",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.logs_kms_key_arn,
            tags=merge_tags(f"{args.cluster_name}-broker-logs", args.tags, {}),
            opts=self.child,
        )

        properties = server_properties(
            args.replication_factor, args.min_insync_replicas, args.retention_ms
        )
        configuration = aws.msk.Configuration(
            f"{name}-config",
            # Auto-named: a Kafka version change replaces the configuration, and a fixed name
            # would collide with the old one during create-before-delete.
            description=f"Broker settings of {args.cluster_name} (managed by Pulumi)",
            kafka_versions=[args.kafka_version],
            server_properties=render_server_properties(properties),
            opts=self.child,
        )

        cluster = aws.msk.Cluster(
            f"{name}-cluster",
            cluster_name=args.cluster_name,
            kafka_version=args.kafka_version,
            number_of_broker_nodes=args.broker_count,
            broker_node_group_info={
                "instance_type": args.instance_type,
                "client_subnets": list(args.subnet_ids),
                "security_groups": [security_group.id],
                "storage_info": {"ebs_storage_info": {"volume_size": args.storage_gib}},
            },
            configuration_info=aws.msk.ClusterConfigurationInfoArgs(
                arn=configuration.arn,
                revision=configuration.latest_revision,
            ),
            encryption_info=aws.msk.ClusterEncryptionInfoArgs(
                encryption_at_rest_kms_key_arn=args.kms_key_arn,
                encryption_in_transit=aws.msk.ClusterEncryptionInfoEncryptionInTransitArgs(
                    client_broker="TLS",
                    in_cluster=True,
                ),
            ),
            client_authentication=aws.msk.ClusterClientAuthenticationArgs(
                sasl=aws.msk.ClusterClientAuthenticationSaslArgs(iam=True, scram=False),
                unauthenticated=False,
            ),
            enhanced_monitoring=args.enhanced_monitoring,
            open_monitoring=aws.msk.ClusterOpenMonitoringArgs(
                prometheus=aws.msk.ClusterOpenMonitoringPrometheusArgs(
                    jmx_exporter=aws.msk.ClusterOpenMonitoringPrometheusJmxExporterArgs(
                        enabled_in_broker=True
                    ),
                    node_exporter=aws.msk.ClusterOpenMonitoringPrometheusNodeExporterArgs(
                        enabled_in_broker=True
                    ),
                ),
            ),
            logging_info=aws.msk.ClusterLoggingInfoArgs(
                broker_logs=aws.msk.ClusterLoggingInfoBrokerLogsArgs(
                    cloudwatch_logs=aws.msk.ClusterLoggingInfoBrokerLogsCloudwatchLogsArgs(
                        enabled=True,
                        log_group=log_group.name,
                    ),
                ),
            ),
            tags=merge_tags(args.cluster_name, args.tags, {}),
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                # Storage autoscaling grows the volumes behind Pulumi's back; without this the
                # next `up` would try to shrink them back, which MSK refuses.
                ignore_changes=["brokerNodeGroupInfo.storageInfo.ebsStorageInfo.volumeSize"],
            ),
        )

        storage_target = aws.appautoscaling.Target(
            f"{name}-storage-target",
            service_namespace="kafka",
            scalable_dimension="kafka:broker-storage:VolumeSize",
            resource_id=cluster.arn,
            # The floor is the provisioned size: MSK volumes never shrink.
            min_capacity=args.storage_gib,
            max_capacity=args.max_storage_gib,
            tags=merge_tags(f"{args.cluster_name}-storage", args.tags, {}),
            opts=self.child,
        )

        aws.appautoscaling.Policy(
            f"{name}-storage-policy",
            policy_type="TargetTrackingScaling",
            service_namespace=storage_target.service_namespace,
            scalable_dimension=storage_target.scalable_dimension,
            resource_id=storage_target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": STORAGE_TARGET_UTILIZATION,
                "predefined_metric_specification": {
                    "predefined_metric_type": "KafkaBrokerStorageUtilization",
                },
                # MSK cannot shrink a volume; scale-in would only produce failed activities.
                "disable_scale_in": True,
            },
            opts=self.child,
        )

        self.cluster_arn = cluster.arn
        self.cluster_name = cluster.cluster_name
        self.bootstrap_brokers_iam = cluster.bootstrap_brokers_sasl_iam
        # Topic and group ARNs (least-privilege IAM for the apps) embed the cluster UUID.
        self.cluster_uuid = cluster.cluster_uuid
        self.security_group_id = security_group.id
        return {
            "cluster_arn": self.cluster_arn,
            "cluster_name": self.cluster_name,
            "bootstrap_brokers_iam": self.bootstrap_brokers_iam,
            "cluster_uuid": self.cluster_uuid,
            "security_group_id": self.security_group_id,
        }

    @staticmethod
    def _ingress_rules(args: KafkaClusterArgs) -> list[aws.ec2.SecurityGroupIngressArgs]:
        sources = list(args.client_security_group_ids)
        rules = [
            aws.ec2.SecurityGroupIngressArgs(
                description="Kafka clients: SASL/IAM over TLS",
                protocol="tcp",
                from_port=MSK_IAM_PORT,
                to_port=MSK_IAM_PORT,
                security_groups=sources,
            )
        ]
        if args.allow_prometheus_scrape:
            rules.append(
                aws.ec2.SecurityGroupIngressArgs(
                    description="Prometheus: JMX (11001) and node (11002) exporters",
                    protocol="tcp",
                    from_port=11001,
                    to_port=11002,
                    security_groups=sources,
                )
            )
        return rules
