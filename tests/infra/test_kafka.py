"""KafkaCluster (MSK) under the recording mocks, plus its pure server-properties functions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.config import KafkaConfig
from infra.contracts import MSK_IAM_PORT, SEVEN_DAYS_MS
from infra.data.kafka import KafkaCluster, KafkaClusterArgs
from infra.data.kafka_properties import (
    parse_server_properties,
    render_server_properties,
    replication_for,
    server_properties,
    validate_replication,
)
from platform_cli.offline import Declared, DeclaredResource
from tests.infra.components import (
    declare_component,
    prod_and_dev,
    refusals_naming_the_field,
)
from tests.infra.taggable import assert_tagged

KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/msk-data-key"
LOGS_KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/logs-key"
NODE_SG = "sg-0eksnodes"
BASE_TAGS = {"project": "platform", "managed-by": "pulumi", "team": "platform"}


def _args(stack: str, **overrides: Any) -> KafkaClusterArgs:
    prod = stack == "prod"
    brokers = 3 if prod else 2
    kafka = KafkaConfig(broker_count=brokers)
    subnets = [f"subnet-private-{az}" for az in "abc"[:brokers]]
    base = KafkaClusterArgs(
        cluster_name=f"plat-{stack}",
        kafka_version="3.6.0",
        broker_count=brokers,
        instance_type="kafka.m7g.large" if prod else "kafka.t3.small",
        storage_gib=500 if prod else 20,
        max_storage_gib=2000 if prod else 100,
        replication_factor=kafka.replication_factor,
        min_insync_replicas=kafka.min_insync_replicas,
        vpc_id="vpc-0123",
        subnet_ids=subnets,
        client_security_group_ids=[NODE_SG],
        kms_key_arn=KEY_ARN,
        log_retention_days=90 if prod else 14,
        logs_kms_key_arn=LOGS_KEY_ARN if prod else None,
        tags={**BASE_TAGS, "stack": stack},
        protect=prod,
    )
    return dataclasses.replace(base, **overrides)


prod, dev = prod_and_dev(lambda stack: KafkaCluster("kafka", _args(stack)))


def _cluster(declared: Declared) -> DeclaredResource:
    return declared.one("aws:msk/cluster:Cluster")


# --- Pure functions ------------------------------------------------------------------------------


def test_server_properties_exact_for_three_brokers() -> None:
    assert server_properties(3, 2) == {
        "auto.create.topics.enable": "false",
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "unclean.leader.election.enable": "false",
        "log.retention.ms": "604800000",
    }


@given(st.integers(min_value=1, max_value=30))
def test_replication_fits_any_broker_count(brokers: int) -> None:
    replication = replication_for(brokers)
    rf, isr = replication.replication_factor, replication.min_insync_replicas
    assert rf == min(3, brokers)
    assert 1 <= isr <= max(1, rf - 1)
    # With two or more replicas one broker may fail and acks=all writes still succeed.
    if rf > 1:
        assert isr < rf
    validate_replication(brokers, rf, isr)
    # The typed stack config derives the same numbers.
    config = KafkaConfig(broker_count=brokers)
    assert (config.replication_factor, config.min_insync_replicas) == (rf, isr)
    props = server_properties(rf, isr)
    assert props["default.replication.factor"] == props["offsets.topic.replication.factor"]
    assert int(props["default.replication.factor"]) <= brokers
    assert props["unclean.leader.election.enable"] == "false"
    assert props["auto.create.topics.enable"] == "false"


@given(
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=1, max_value=2),
    st.integers(min_value=1, max_value=10**12),
)
def test_rendered_properties_round_trip(rf: int, isr: int, retention: int) -> None:
    props = server_properties(rf, isr, retention)
    text = render_server_properties(props)
    assert text.endswith("\n")
    assert parse_server_properties(text) == props


def test_render_rejects_a_key_that_cannot_be_a_line() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        render_server_properties({"bad key": "x"})


@pytest.mark.parametrize(
    ("brokers", "rf", "isr", "field"),
    [(2, 3, 2, "replication_factor"), (3, 3, 3, "min_insync_replicas"), (3, 3, 0, "min_insync")],
)
def test_validate_replication_names_the_field(brokers: int, rf: int, isr: int, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        validate_replication(brokers, rf, isr)


def test_replication_for_refuses_zero_brokers() -> None:
    with pytest.raises(ValueError, match="broker_count: 0"):
        replication_for(0)


# --- The component -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_encryption_at_rest_with_customer_key_and_tls_only_in_transit(
    stack: str, request: pytest.FixtureRequest
) -> None:
    encryption = _cluster(request.getfixturevalue(stack)).inputs["encryptionInfo"]
    assert encryption["encryptionAtRestKmsKeyArn"] == KEY_ARN
    assert encryption["encryptionInTransit"] == {"clientBroker": "TLS", "inCluster": True}


def test_client_authentication_is_iam_only(prod: Declared) -> None:
    auth = _cluster(prod).inputs["clientAuthentication"]
    assert auth["unauthenticated"] is False
    assert auth["sasl"] == {"iam": True, "scram": False}
    assert "tls" not in auth  # no mutual-TLS certificates to manage


@pytest.mark.parametrize(
    ("stack", "rf", "isr"),
    [("prod", "3", "2"), ("dev", "2", "1")],
)
def test_server_properties_declared_exactly(
    stack: str, rf: str, isr: str, request: pytest.FixtureRequest
) -> None:
    declared: Declared = request.getfixturevalue(stack)
    configuration = declared.one("aws:msk/configuration:Configuration")
    assert configuration.inputs["kafkaVersions"] == ["3.6.0"]
    assert parse_server_properties(configuration.inputs["serverProperties"]) == {
        "auto.create.topics.enable": "false",
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "unclean.leader.election.enable": "false",
        "log.retention.ms": str(SEVEN_DAYS_MS),
    }
    info = _cluster(declared).inputs["configurationInfo"]
    assert info["arn"] == "arn:aws:msk:eu-west-1:123456789012:kafka-config"
    assert info["revision"] == 1


@pytest.mark.parametrize(("stack", "brokers"), [("prod", 3), ("dev", 2)])
def test_brokers_in_the_given_private_subnets_behind_our_security_group(
    stack: str, brokers: int, request: pytest.FixtureRequest
) -> None:
    declared: Declared = request.getfixturevalue(stack)
    cluster = _cluster(declared).inputs
    outputs = declared.component_outputs[declared.one("platform:data:KafkaCluster").urn]
    nodes = cluster["brokerNodeGroupInfo"]
    assert cluster["numberOfBrokerNodes"] == brokers
    assert cluster["kafkaVersion"] == "3.6.0"
    assert nodes["clientSubnets"] == [f"subnet-private-{az}" for az in "abc"[:brokers]]
    assert nodes["securityGroups"] == [outputs["security_group_id"]]
    assert outputs["security_group_id"].startswith("kafka-sg-")
    assert "connectivityInfo" not in nodes  # no public access


def test_security_group_admits_only_the_node_group_on_the_iam_port(prod: Declared) -> None:
    group = prod.one("aws:ec2/securityGroup:SecurityGroup").inputs
    assert group["vpcId"] == "vpc-0123"
    assert group["ingress"] == [
        {
            "description": "Kafka clients: SASL/IAM over TLS",
            "protocol": "tcp",
            "fromPort": MSK_IAM_PORT,
            "toPort": MSK_IAM_PORT,
            "securityGroups": [NODE_SG],
        }
    ]
    assert not group.get("egress")
    for rule in group["ingress"]:
        assert not rule.get("cidrBlocks")
        assert not rule.get("ipv6CidrBlocks")
        assert "0.0.0.0/0" not in str(rule) and "::/0" not in str(rule)


def test_prometheus_scrape_ports_open_only_to_the_node_group_when_asked() -> None:
    declared = declare_component(
        lambda: KafkaCluster("kafka", _args("dev", allow_prometheus_scrape=True)), "dev"
    )
    rules = declared.one("aws:ec2/securityGroup:SecurityGroup").inputs["ingress"]
    assert [(r["fromPort"], r["toPort"]) for r in rules] == [(9098, 9098), (11001, 11002)]
    assert all(r["securityGroups"] == [NODE_SG] and not r.get("cidrBlocks") for r in rules)


@pytest.mark.parametrize(("stack", "days"), [("prod", 90), ("dev", 14)])
def test_broker_logs_go_to_a_retained_log_group(
    stack: str, days: int, request: pytest.FixtureRequest
) -> None:
    declared: Declared = request.getfixturevalue(stack)
    log_group = declared.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert log_group["name"] == f"/aws/msk/plat-{stack}/broker"
    assert log_group["retentionInDays"] == days
    assert log_group.get("kmsKeyId") == (LOGS_KEY_ARN if stack == "prod" else None)
    logs = _cluster(declared).inputs["loggingInfo"]["brokerLogs"]["cloudwatchLogs"]
    assert logs == {"enabled": True, "logGroup": log_group["name"]}


def test_monitoring_enhanced_and_prometheus_exporters_on(prod: Declared) -> None:
    cluster = _cluster(prod).inputs
    assert cluster["enhancedMonitoring"] == "PER_TOPIC_PER_BROKER"
    assert cluster["openMonitoring"] == {
        "prometheus": {
            "jmxExporter": {"enabledInBroker": True},
            "nodeExporter": {"enabledInBroker": True},
        }
    }


@pytest.mark.parametrize(("stack", "low", "high"), [("prod", 500, 2000), ("dev", 20, 100)])
def test_storage_autoscaling_targets_the_cluster_up_to_the_max(
    stack: str, low: int, high: int, request: pytest.FixtureRequest
) -> None:
    declared: Declared = request.getfixturevalue(stack)
    cluster = _cluster(declared)
    assert cluster.inputs["brokerNodeGroupInfo"]["storageInfo"] == {
        "ebsStorageInfo": {"volumeSize": low}
    }
    target = declared.one("aws:appautoscaling/target:Target")
    assert target.inputs["serviceNamespace"] == "kafka"
    assert target.inputs["scalableDimension"] == "kafka:broker-storage:VolumeSize"
    assert target.inputs["resourceId"] == "arn:aws:msk:eu-west-1:123456789012:kafka-cluster"
    assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == (low, high)
    assert declared.depends_on(target, cluster)
    policy = declared.one("aws:appautoscaling/policy:Policy").inputs
    assert policy["policyType"] == "TargetTrackingScaling"
    assert policy["resourceId"] == target.inputs["resourceId"]
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["predefinedMetricSpecification"] == {
        "predefinedMetricType": "KafkaBrokerStorageUtilization"
    }
    assert 0 < tracking["targetValue"] < 100
    assert tracking["disableScaleIn"] is True


def test_protect_on_in_prod_off_in_dev(prod: Declared, dev: Declared) -> None:
    assert _cluster(prod).protect is True
    assert _cluster(dev).protect is False


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_every_taggable_resource_carries_base_tags_and_a_name(
    stack: str, request: pytest.FixtureRequest
) -> None:
    declared: Declared = request.getfixturevalue(stack)
    assert assert_tagged(declared) >= 4
    for resource in declared.resources:
        if "tags" in resource.inputs:
            assert resource.inputs["tags"]["Name"].startswith(f"plat-{stack}")
            assert resource.inputs["tags"]["stack"] == stack


def test_children_are_parented_and_named_after_the_component(prod: Declared) -> None:
    component = prod.one("platform:data:KafkaCluster")
    children = [r for r in prod.resources if r.custom]
    assert len(children) == 6
    for child in children:
        assert child.parent == component.urn
        assert child.name.startswith("kafka-")


def test_registered_outputs_are_what_apps_need(prod: Declared) -> None:
    outputs = prod.component_outputs[prod.one("platform:data:KafkaCluster").urn]
    assert set(outputs) == {
        "cluster_arn",
        "cluster_name",
        "bootstrap_brokers_iam",
        "cluster_uuid",
        "security_group_id",
    }
    assert outputs["cluster_name"] == "plat-prod"
    assert all(b.endswith(":9098") for b in outputs["bootstrap_brokers_iam"].split(","))


test_invalid_args_fail_before_any_resource_naming_the_field = refusals_naming_the_field(
    lambda **overrides: KafkaCluster("kafka", _args("prod", **overrides)),
    [
        ({"broker_count": 4}, "broker_count: 4 is not a multiple of the 3 subnet_ids"),
        ({"max_storage_gib": 100}, "max_storage_gib: 100 < storage_gib 500"),
        ({"storage_gib": 0}, "storage_gib: 0"),
        ({"replication_factor": 4, "broker_count": 3}, "replication_factor: 4"),
        ({"min_insync_replicas": 3}, "min_insync_replicas: 3"),
        ({"client_security_group_ids": []}, "client_security_group_ids: empty"),
        ({"subnet_ids": []}, "subnet_ids: empty"),
        ({"log_retention_days": 0}, "log_retention_days: 0"),
    ],
)
