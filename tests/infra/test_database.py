"""Database (RDS PostgreSQL) under the recording mocks, plus its pure parameter functions."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.contracts import POSTGRES_PORT
from infra.data.database import MASTER_USERNAME, Database, DatabaseArgs
from infra.data.rds_parameters import (
    final_snapshot_identifier,
    postgres_parameters,
    valid_performance_insights_retention,
)
from platform_cli.offline import Declared, DeclaredResource
from tests.infra.components import (
    prod_and_dev,
    refusals_naming_the_field,
)
from tests.infra.taggable import assert_tagged

KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/rds-data-key"
NODE_SG = "sg-0eksnodes"
ISOLATED = ["subnet-isolated-a", "subnet-isolated-b", "subnet-isolated-c"]


def _args(stack: str, **overrides: Any) -> DatabaseArgs:
    prod = stack == "prod"
    base = DatabaseArgs(
        identifier=f"plat-{stack}",
        engine_version="16.6",
        parameter_group_family="postgres16",
        instance_class="db.r6g.large" if prod else "db.t4g.micro",
        allocated_storage_gib=100 if prod else 20,
        max_allocated_storage_gib=1000 if prod else 50,
        multi_az=prod,
        backup_retention_days=30 if prod else 7,
        database_name="platform",
        performance_insights_retention_days=31 if prod else 7,
        vpc_id="vpc-0123",
        subnet_ids=ISOLATED if prod else ISOLATED[:2],
        client_security_group_ids=[NODE_SG],
        kms_key_arn=KEY_ARN,
        deletion_protection=prod,
        final_snapshot=prod,
        protect=prod,
        tags={"project": "platform", "stack": stack, "managed-by": "pulumi", "team": "data"},
    )
    return dataclasses.replace(base, **overrides)


prod, dev = prod_and_dev(lambda stack: Database("db", _args(stack)))


def _instance(declared: Declared) -> DeclaredResource:
    return declared.one("aws:rds/instance:Instance")


def _keys(value: Any) -> Iterator[str]:
    """Every dict key at any depth of a recorded input tree."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


# --- Pure functions ------------------------------------------------------------------------------


def test_parameters_force_tls_and_log_slow_statements() -> None:
    params = postgres_parameters()
    assert params["rds.force_ssl"] == "1"
    assert params["ssl_min_protocol_version"] == "TLSv1.2"
    assert params["log_min_duration_statement"] == "1000"
    assert postgres_parameters(250)["log_min_duration_statement"] == "250"


@given(st.integers(min_value=0, max_value=1000))
def test_performance_insights_retention_rule(days: int) -> None:
    expected = days in (7, 731) or (days % 31 == 0 and 31 <= days <= 713)
    assert valid_performance_insights_retention(days) is expected


# --- The component -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_storage_encrypted_with_the_customer_key_on_gp3(
    stack: str, request: pytest.FixtureRequest
) -> None:
    db = _instance(request.getfixturevalue(stack)).inputs
    assert db["storageEncrypted"] is True
    assert db["kmsKeyId"] == KEY_ARN
    assert db["storageType"] == "gp3"
    assert db["performanceInsightsEnabled"] is True
    assert db["performanceInsightsKmsKeyId"] == KEY_ARN
    assert db["masterUserSecretKmsKeyId"] == KEY_ARN


def test_engine_pinned_and_never_upgraded_behind_our_back(prod: Declared) -> None:
    db = _instance(prod).inputs
    assert (db["engine"], db["engineVersion"]) == ("postgres", "16.6")
    assert db["autoMinorVersionUpgrade"] is False
    assert db["allowMajorVersionUpgrade"] is False
    params = prod.one("aws:rds/parameterGroup:ParameterGroup").inputs
    assert params["family"] == "postgres16"
    assert params["name"] == "plat-prod-postgres16"


def test_parameter_group_forces_ssl_and_is_attached(prod: Declared) -> None:
    group = prod.one("aws:rds/parameterGroup:ParameterGroup")
    declared = {p["name"]: p["value"] for p in group.inputs["parameters"]}
    assert declared == postgres_parameters()
    assert declared["rds.force_ssl"] == "1"
    assert _instance(prod).inputs["parameterGroupName"] == group.inputs["name"]
    assert group.urn in _instance(prod).property_dependencies["parameterGroupName"]


@pytest.mark.parametrize(("stack", "subnets"), [("prod", ISOLATED), ("dev", ISOLATED[:2])])
def test_placed_in_isolated_subnets_and_private(
    stack: str, subnets: list[str], request: pytest.FixtureRequest
) -> None:
    declared: Declared = request.getfixturevalue(stack)
    group = declared.one("aws:rds/subnetGroup:SubnetGroup")
    assert group.inputs["subnetIds"] == subnets
    instance = _instance(declared)
    assert instance.inputs["dbSubnetGroupName"] == group.inputs["name"] == f"plat-{stack}-isolated"
    assert group.urn in instance.property_dependencies["dbSubnetGroupName"]
    assert instance.inputs["publiclyAccessible"] is False


def test_security_group_admits_only_the_node_group_on_5432(prod: Declared) -> None:
    group = prod.one("aws:ec2/securityGroup:SecurityGroup")
    assert group.inputs["vpcId"] == "vpc-0123"
    assert [
        (r["protocol"], r["fromPort"], r["toPort"], r["securityGroups"])
        for r in group.inputs["ingress"]
    ] == [("tcp", POSTGRES_PORT, POSTGRES_PORT, [NODE_SG])]
    for rule in group.inputs["ingress"]:
        assert not rule.get("cidrBlocks") and not rule.get("ipv6CidrBlocks")
    assert "0.0.0.0/0" not in str(group.inputs) and "::/0" not in str(group.inputs)
    assert not group.inputs.get("egress")
    instance = _instance(prod)
    assert group.urn in instance.property_dependencies["vpcSecurityGroupIds"]


ABSENT = object()
"""An input the instance must not set at all."""


@pytest.mark.parametrize(
    ("stack", "expected_inputs", "protected"),
    [
        (
            "prod",
            {
                "multiAz": True,
                "backupRetentionPeriod": 30,
                "deletionProtection": True,
                "skipFinalSnapshot": False,
                "finalSnapshotIdentifier": "plat-prod-final",
                "copyTagsToSnapshot": True,
                "performanceInsightsRetentionPeriod": 31,
            },
            True,
        ),
        (
            "dev",
            {
                "multiAz": False,
                "backupRetentionPeriod": 7,
                "deletionProtection": False,
                "skipFinalSnapshot": True,
                "finalSnapshotIdentifier": ABSENT,
            },
            False,
        ),
    ],
)
def test_prod_is_multi_az_protected_and_snapshotted_and_dev_can_be_torn_down(
    stack: str, expected_inputs: dict[str, Any], protected: bool, request: pytest.FixtureRequest
) -> None:
    instance = _instance(request.getfixturevalue(stack))
    declared = {key: instance.inputs.get(key, ABSENT) for key in expected_inputs}
    assert declared == expected_inputs
    assert instance.protect is protected


def test_the_final_snapshot_is_named_after_the_instance() -> None:
    assert final_snapshot_identifier("plat-prod") == "plat-prod-final"


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_no_password_anywhere_master_secret_managed_by_rds(
    stack: str, request: pytest.FixtureRequest
) -> None:
    declared: Declared = request.getfixturevalue(stack)
    db = _instance(declared).inputs
    assert db["manageMasterUserPassword"] is True
    assert db["username"] == MASTER_USERNAME
    assert db["iamDatabaseAuthenticationEnabled"] is True
    for resource in declared.resources:
        keys = {key.lower() for key in _keys(resource.inputs)}
        assert not keys & {"password", "masterpassword", "passwordwo"}, resource.name


def test_logs_exported_to_cloudwatch(prod: Declared) -> None:
    assert _instance(prod).inputs["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]


def test_registered_outputs(prod: Declared) -> None:
    outputs = prod.component_outputs[prod.one("platform:data:Database").urn]
    assert set(outputs) == {
        "address",
        "port",
        "db_name",
        "master_secret_arn",
        "instance_arn",
        "security_group_id",
    }
    assert outputs["master_secret_arn"].startswith("arn:aws:secretsmanager:")
    assert outputs["db_name"] == "platform"
    assert outputs["port"] == POSTGRES_PORT
    assert outputs["address"].endswith(".rds.amazonaws.com")


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_every_taggable_resource_carries_base_tags(
    stack: str, request: pytest.FixtureRequest
) -> None:
    declared: Declared = request.getfixturevalue(stack)
    assert assert_tagged(declared) == 4
    component = declared.one("platform:data:Database")
    for resource in declared.resources:
        if resource.custom:
            assert resource.parent == component.urn
            assert resource.inputs["tags"]["Name"].startswith(f"plat-{stack}")


test_invalid_args_fail_before_any_resource_naming_the_field = refusals_naming_the_field(
    lambda **overrides: Database("db", _args("prod", **overrides)),
    [
        ({"backup_retention_days": 3}, "backup_retention_days: 3; allowed: 7 to 35"),
        ({"backup_retention_days": 36}, "backup_retention_days: 36"),
        ({"max_allocated_storage_gib": 50}, "max_allocated_storage_gib: 50"),
        ({"allocated_storage_gib": 10}, "allocated_storage_gib: 10"),
        ({"engine_version": "16"}, "engine_version: '16'"),
        ({"parameter_group_family": "postgres15"}, "parameter_group_family: 'postgres15'"),
        ({"performance_insights_retention_days": 30}, "performance_insights_retention_days: 30"),
        ({"subnet_ids": ["subnet-a"]}, "subnet_ids: 1 subnet(s)"),
        ({"client_security_group_ids": []}, "client_security_group_ids: empty"),
        ({"identifier": "Plat_Prod"}, "identifier: 'Plat_Prod'"),
        ({"identifier": "plat-"}, "identifier: 'plat-'"),
        ({"database_name": "1db"}, "database_name: '1db'"),
    ],
)
