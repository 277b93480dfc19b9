"""`platform restore` against moto's RDS (LocalStack's free edition refuses RDS).

What moto serves and what it does not, as found here (moto 5.2.5):
- It serves DescribeDBInstances (with LatestRestorableTime), RestoreDBInstanceToPointInTime,
  RestoreDBInstanceFromDBSnapshot, CreateDBSnapshot, DescribeDBSnapshots, the RDS-managed master
  secret, and the NotFound / AlreadyExists faults: the restore calls run for real.
- Its instances are `available` at once (no `creating` -> `backing-up` -> `available`), it
  reports no `RestoreWindow` in DescribeDBInstanceAutomatedBackups, and it does not refuse a
  RestoreTime outside the window (real RDS answers InvalidRestoreFault). So the window comes
  from the retention period here, the tool's own window check is what refuses a bad time, and
  the waiting loop is exercised on a stopped instance (moto's StopDBInstance).

The printed repoint commands are checked against the Pulumi program run offline: the URNs,
the parent, the provider and `protect` are the ones the state will hold.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner, Result

from infra.config import load_stack_file
from infra.contracts import Fact
from platform_cli.aws_names import names_for_env
from platform_cli.main import app
from platform_cli.offline import Declared, run_stack
from platform_cli.rds_restore import RestoreError, find_instance, wait_available
from platform_cli.restore_repoint import INSTANCE_FACTS, program_urns
from tests.aws.conftest import Emulator
from tests.stacks import committed_stack

STAGING = load_stack_file("staging")
NAMES = names_for_env("staging")
SOURCE = NAMES.rds_instance
DECLARED_AS_RDS_API = {
    "engine": "Engine",
    "engineVersion": "EngineVersion",
    "instanceClass": "DBInstanceClass",
    "allocatedStorage": "AllocatedStorage",
    "maxAllocatedStorage": "MaxAllocatedStorage",
    "dbName": "DBName",
    "username": "MasterUsername",
    "manageMasterUserPassword": "ManageMasterUserPassword",
    "storageEncrypted": "StorageEncrypted",
    "storageType": "StorageType",
    "multiAz": "MultiAZ",
    "backupRetentionPeriod": "BackupRetentionPeriod",
    "deletionProtection": "DeletionProtection",
    "iamDatabaseAuthenticationEnabled": "EnableIAMDatabaseAuthentication",
    "enabledCloudwatchLogsExports": "EnableCloudwatchLogsExports",
    "copyTagsToSnapshot": "CopyTagsToSnapshot",
    "publiclyAccessible": "PubliclyAccessible",
}
"""The staging instance's inputs as the program declares them (aws:rds/instance:Instance, run
offline), by their RDS API names: moto holds the instance `pulumi up -s staging` would create.
The key, subnet group, security group and parameter group are moto's own records instead."""


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, ["restore", *args], catch_exceptions=False)


@dataclass(frozen=True)
class Deployed:
    rds: Any
    ec2: Any
    security_group: str
    kms_key: str
    subnet_group: str
    parameter_group: str

    def source(self) -> dict[str, Any]:
        return self.rds.describe_db_instances(DBInstanceIdentifier=SOURCE)["DBInstances"][0]

    def instance(self, identifier: str) -> dict[str, Any]:
        return self.rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]

    def restored(self) -> list[str]:
        found = self.rds.describe_db_instances()["DBInstances"]
        return sorted(
            i["DBInstanceIdentifier"]
            for i in found
            if i["DBInstanceIdentifier"].startswith(f"{SOURCE}-")
        )


@pytest.fixture
def staging(moto_aws: Emulator) -> Iterator[Deployed]:
    """What `pulumi up -s staging` leaves for the database, as moto records; removed after."""
    # Read before anything is created: a failure here leaves nothing behind for the next test.
    instance = committed_stack("staging").one("aws:rds/instance:Instance").inputs
    assert instance["identifier"] == SOURCE
    region = NAMES.region
    rds, ec2, kms = (moto_aws.client(s, region) for s in ("rds", "ec2", "kms"))
    db = STAGING.database
    vpc = ec2.create_vpc(CidrBlock=STAGING.network.vpc_cidr)["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.30.{48 + i}.0/24", AvailabilityZone=f"{region}{z}"
        )["Subnet"]["SubnetId"]
        for i, z in enumerate("abc")
    ]
    sg = ec2.create_security_group(
        GroupName=f"{SOURCE}-db",
        Description="PostgreSQL",
        VpcId=vpc,
        TagSpecifications=[
            {"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": f"{SOURCE}-db"}]}
        ],
    )["GroupId"]
    key = kms.create_key(Description=f"{SOURCE} rds")["KeyMetadata"]["Arn"]
    subnet_group = f"{SOURCE}-isolated"
    parameter_group = f"{SOURCE}-{db.parameter_group_family}"
    rds.create_db_subnet_group(
        DBSubnetGroupName=subnet_group, DBSubnetGroupDescription="isolated", SubnetIds=subnets
    )
    rds.create_db_parameter_group(
        DBParameterGroupName=parameter_group,
        DBParameterGroupFamily=db.parameter_group_family,
        Description="TLS-only",
    )
    rds.create_db_instance(
        DBInstanceIdentifier=SOURCE,
        **{api: instance[declared] for declared, api in DECLARED_AS_RDS_API.items()},
        MasterUserSecretKmsKeyId=key,
        KmsKeyId=key,
        DBSubnetGroupName=subnet_group,
        VpcSecurityGroupIds=[sg],
        DBParameterGroupName=parameter_group,
        Tags=[{"Key": k, "Value": v} for k, v in instance["tags"].items()],
    )
    deployed = Deployed(rds, ec2, sg, key, subnet_group, parameter_group)
    try:
        yield deployed
    finally:
        for identifier in [SOURCE, *deployed.restored()]:
            with contextlib.suppress(ClientError):
                rds.modify_db_instance(
                    DBInstanceIdentifier=identifier, DeletionProtection=False, ApplyImmediately=True
                )
                rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)
        for snap in rds.describe_db_snapshots()["DBSnapshots"]:
            if snap["DBInstanceIdentifier"].startswith(SOURCE):
                with contextlib.suppress(ClientError):
                    rds.delete_db_snapshot(DBSnapshotIdentifier=snap["DBSnapshotIdentifier"])
        with contextlib.suppress(ClientError):
            rds.delete_db_parameter_group(DBParameterGroupName=parameter_group)
        with contextlib.suppress(ClientError):
            rds.delete_db_subnet_group(DBSubnetGroupName=subnet_group)
        with contextlib.suppress(ClientError):
            ec2.delete_security_group(GroupId=sg)
        for subnet in subnets:
            with contextlib.suppress(ClientError):
                ec2.delete_subnet(SubnetId=subnet)
        with contextlib.suppress(ClientError):
            ec2.delete_vpc(VpcId=vpc)
        with contextlib.suppress(ClientError):
            kms.schedule_key_deletion(KeyId=key.rsplit("/", 1)[1], PendingWindowInDays=7)


def _assert_same_placement(deployed: Deployed, restored: dict[str, Any]) -> None:
    assert restored["DBSubnetGroup"]["DBSubnetGroupName"] == deployed.subnet_group
    assert [g["VpcSecurityGroupId"] for g in restored["VpcSecurityGroups"]] == [
        deployed.security_group
    ]
    assert restored["DBParameterGroups"][0]["DBParameterGroupName"] == deployed.parameter_group
    assert restored["KmsKeyId"] == deployed.kms_key
    assert restored["StorageEncrypted"] is True
    assert restored["PubliclyAccessible"] is False
    assert restored["MasterUserSecret"]["KmsKeyId"] == deployed.kms_key


def _tags(deployed: Deployed, identifier: str) -> dict[str, str]:
    arn = deployed.instance(identifier)["DBInstanceArn"]
    listing = deployed.rds.list_tags_for_resource(ResourceName=arn)["TagList"]
    return {t["Key"]: t["Value"] for t in listing}


def test_point_in_time_restore_makes_a_new_instance_where_the_source_is(
    staging: Deployed,
) -> None:
    source_before = staging.source()
    time.sleep(1.1)  # room between the instance's creation and the restore point
    point = datetime.now(UTC) - timedelta(milliseconds=300)
    result = _run("db", "--env", "staging", "--to-time", point.isoformat(), "--poll", "0.1")
    assert result.exit_code == 0, result.output

    target = f"{SOURCE}-restore-{point:%Y%m%d-%H%M}"
    assert staging.restored() == [target]
    restored = staging.instance(target)
    _assert_same_placement(staging, restored)
    assert restored["DBInstanceClass"] == STAGING.database.instance_class
    assert restored["MultiAZ"] is STAGING.database.multi_az
    assert restored["DeletionProtection"] is True  # staging's protection, as the source
    secret = restored["MasterUserSecret"]["SecretArn"]
    assert secret != source_before["MasterUserSecret"]["SecretArn"]  # a new managed secret
    tags = _tags(staging, target)
    assert tags["Name"] == target
    assert tags["restored-from"] == SOURCE
    assert tags["restore-point"] == point.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tags["stack"] == "staging"  # the source's tags come along
    # The source is untouched.
    after = staging.source()
    assert after["DBInstanceStatus"] == "available"
    assert after["MasterUserSecret"]["SecretArn"] == source_before["MasterUserSecret"]["SecretArn"]

    out = result.output
    assert f"{target} is available at {restored['Endpoint']['Address']}" in out
    # Every placement check passed: no table cell reads NO (an ARN may contain the letters).
    assert re.search(r"│\s*yes\s*│", out), out  # the table is there
    assert not re.search(r"│\s*NO\s*│", out), out
    # DB_SECRET_REF changes, DB_HOST comes back unchanged once the restored one is renamed.
    address = source_before["Endpoint"]["Address"]
    assert (
        "DB_SECRET_REF: changes\n"
        f"    now: {source_before['MasterUserSecret']['SecretArn']}\n"
        f"    restored instance: {secret}\n"
        f"    after the swap: {secret}\n"
    ) in out
    assert (
        "DB_HOST: unchanged\n"
        f"    now: {address}\n"
        f"    restored instance: {restored['Endpoint']['Address']}\n"
        f"    after the swap: {address}\n"
    ) in out
    assert "DB_PORT: unchanged" in out and "DB_NAME: unchanged" in out
    urns = program_urns(STAGING)
    assert f"pulumi state delete -s staging '{urns.instance}' --yes" in out
    assert "pulumi state unprotect" not in out  # staging does not `protect` its resources
    assert (
        f"pulumi import -s staging aws:rds/instance:Instance database-instance {SOURCE} "
        f"--parent database={urns.component} --provider aws={urns.provider} "
        "--protect=false --generate-code=false --yes"
    ) in out
    assert f"--db-instance-identifier {target} --new-db-instance-identifier {SOURCE}" in out


def test_latest_and_snapshot_restores(staging: Deployed) -> None:
    latest = _run("db", "--env", "staging", "--latest", "--target", f"{SOURCE}-latest")
    assert latest.exit_code == 0, latest.output
    _assert_same_placement(staging, staging.instance(f"{SOURCE}-latest"))

    staging.rds.create_db_snapshot(
        DBInstanceIdentifier=SOURCE, DBSnapshotIdentifier="before-upgrade"
    )
    created = staging.rds.describe_db_snapshots(DBSnapshotIdentifier="before-upgrade")[
        "DBSnapshots"
    ][0]["SnapshotCreateTime"].astimezone(UTC)
    result = _run("db", "--env", "staging", "--snapshot", "before-upgrade", "--poll", "0.1")
    assert result.exit_code == 0, result.output
    target = f"{SOURCE}-restore-{created:%Y%m%d-%H%M}"
    restored = staging.instance(target)
    _assert_same_placement(staging, restored)
    assert _tags(staging, target)["restored-from"] == "before-upgrade"


def test_a_deleted_instance_restores_from_its_final_snapshot_with_the_stacks_placement(
    staging: Deployed,
) -> None:
    staging.rds.modify_db_instance(
        DBInstanceIdentifier=SOURCE, DeletionProtection=False, ApplyImmediately=True
    )
    staging.rds.delete_db_instance(
        DBInstanceIdentifier=SOURCE, FinalDBSnapshotIdentifier=f"{SOURCE}-final"
    )
    assert find_instance(staging.rds, SOURCE) is None

    result = _run("db", "--env", "staging", "--snapshot", f"{SOURCE}-final", "--poll", "0.1")
    assert result.exit_code == 0, result.output
    (target,) = staging.restored()
    _assert_same_placement(staging, staging.instance(target))
    assert "Move the old instance out of the way" not in result.output  # nothing to move
    assert f"--new-db-instance-identifier {SOURCE} --apply-immediately" in result.output


def test_dry_run_starts_nothing(staging: Deployed) -> None:
    result = _run("db", "--env", "staging", "--latest", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: nothing started" in result.output
    assert staging.restored() == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "exactly one of --to-time ISO, --latest or --snapshot ID"),
        (["--latest", "--snapshot", "x"], "got --latest and --snapshot"),
        (["--to-time", "noon"], "is not an ISO-8601 time"),
        (["--to-time", "2001-01-01T00:00:00Z"], "is outside the restorable window"),
        (["--to-time", "2999-01-01T00:00:00"], "2999-01-01T00:00:00+00:00 is outside the"),
        (["--latest", "--target", "Bad_Name"], "--target: identifier: 'Bad_Name'"),
        (["--latest", "--target", SOURCE], "is the source; a restore never overwrites it"),
        (["--snapshot", "no-such-snapshot"], "--snapshot: 'no-such-snapshot' not found"),
    ],
)
def test_bad_input_is_refused_before_anything_starts(
    staging: Deployed, args: list[str], says: str
) -> None:
    result = _run("db", "--env", "staging", *args)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.output.split())
    assert staging.restored() == []


def test_an_existing_target_is_never_overwritten(staging: Deployed) -> None:
    first = _run("db", "--env", "staging", "--latest", "--target", f"{SOURCE}-copy")
    assert first.exit_code == 0, first.output
    secret = staging.instance(f"{SOURCE}-copy")["MasterUserSecret"]["SecretArn"]
    again = _run("db", "--env", "staging", "--latest", "--target", f"{SOURCE}-copy")
    assert again.exit_code == 2
    assert "already exists; a restore never overwrites" in again.output
    assert staging.instance(f"{SOURCE}-copy")["MasterUserSecret"]["SecretArn"] == secret


def test_an_unknown_instance_names_what_exists(moto_aws: Emulator) -> None:
    result = _run("db", "--env", "staging", "--latest")
    assert result.exit_code == 2
    assert f"unknown instance '{SOURCE}' in {NAMES.region}" in " ".join(result.output.split())


def test_stacks_without_rds_are_refused() -> None:
    result = _run("db", "--env", "localstack", "--latest")
    assert result.exit_code == 2
    assert "platform:database.mode is 'in-cluster'" in " ".join(result.output.split())


def test_points_shows_the_window_and_the_snapshots(staging: Deployed) -> None:
    staging.rds.create_db_snapshot(DBInstanceIdentifier=SOURCE, DBSnapshotIdentifier="nightly-1")
    result = _run("points", "--env", "staging")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert f"backups kept {STAGING.database.backup_retention_days} days" in text
    assert "earliest from the retention period" in text  # moto reports no RestoreWindow
    assert "nightly-1" in text


def test_waiting_reports_each_status_and_gives_up_at_the_timeout(staging: Deployed) -> None:
    staging.rds.stop_db_instance(DBInstanceIdentifier=SOURCE)
    seen: list[str] = []
    with pytest.raises(RestoreError, match="still 'stopped' after 1 s"):
        wait_available(
            staging.rds,
            SOURCE,
            timeout_s=1.0,
            poll_s=0.2,
            on_status=lambda status, _elapsed: seen.append(status),
        )
    assert len(seen) >= 3 and set(seen) == {"stopped"}
    staging.rds.start_db_instance(DBInstanceIdentifier=SOURCE)
    assert wait_available(staging.rds, SOURCE, timeout_s=5, poll_s=0.1).status == "available"


def test_repoint_needs_an_available_restored_instance(staging: Deployed) -> None:
    missing = _run("repoint", "--env", "staging", "--target", f"{SOURCE}-nope")
    assert missing.exit_code == 2 and "no instance" in missing.output
    own = _run("repoint", "--env", "staging", "--target", SOURCE)
    assert own.exit_code == 2 and "the stack's own instance" in own.output
    assert _run("db", "--env", "staging", "--latest", "--target", f"{SOURCE}-r1").exit_code == 0
    result = _run("repoint", "--env", "staging", "--target", f"{SOURCE}-r1")
    assert result.exit_code == 0, result.output
    assert "pulumi up -s staging" in result.output


# --- the printed commands match the program ---------------------------------------------------


def _without_stack_type(urn: str) -> str:
    # The engine leaves the root stack's type out of its children's URNs; the SDK's mock
    # monitor puts it in. Provider references also carry "::<id>".
    parts = urn.replace("::pulumi:pulumi:Stack$", "::").split("::")
    return "::".join(parts[:4])


@pytest.fixture(scope="module", params=["dev", "prod"])
def declared(request: pytest.FixtureRequest) -> tuple[str, Declared]:
    return request.param, run_stack(load_stack_file(request.param))


def test_urns_parent_provider_and_protect_are_the_programs(declared: tuple[str, Declared]) -> None:
    env, program = declared
    cfg = load_stack_file(env)
    urns = program_urns(cfg)
    (instance,) = program.of_type("aws:rds/instance:Instance")
    assert instance.urn == urns.instance
    assert instance.parent is not None and instance.provider is not None
    assert _without_stack_type(instance.parent) == urns.component
    assert _without_stack_type(instance.provider) == urns.provider
    assert instance.protect is cfg.protection.protect_resources


def test_exactly_the_instance_facts_come_from_the_instance(declared: tuple[str, Declared]) -> None:
    """Why the repoint is a state swap + `pulumi up`: these facts follow the instance's outputs."""
    _env, program = declared
    (config_map,) = [
        r
        for r in program.of_type("kubernetes:core/v1:ConfigMap")
        if r.inputs.get("metadata", {}).get("name") == "platform-facts"
    ]
    data = config_map.inputs["data"]
    (instance,) = program.of_type("aws:rds/instance:Instance")
    address = f"{instance.name}.abcdefghij."  # the mock's endpoint for this instance
    from_instance = {
        Fact(key)
        for key, value in data.items()
        if str(value).startswith(address)
        or str(value).endswith(f"secret:rds!{instance.name}")
        or (key == Fact.DB_NAME and value == instance.inputs["dbName"])
        or (key == Fact.DB_PORT and value == str(instance.inputs["port"]))
    }
    assert from_instance == set(INSTANCE_FACTS)


def test_stack_placement_names_are_the_programs() -> None:
    """`placement_from_stack` (a deleted source) names what infra/data/database.py declares."""
    program = run_stack(STAGING)
    (subnet_group,) = program.of_type("aws:rds/subnetGroup:SubnetGroup")
    (parameter_group,) = program.of_type("aws:rds/parameterGroup:ParameterGroup")
    assert subnet_group.inputs["name"] == f"{SOURCE}-isolated"
    assert parameter_group.inputs["name"] == f"{SOURCE}-{STAGING.database.parameter_group_family}"
    tagged = [
        r
        for r in program.of_type("aws:ec2/securityGroup:SecurityGroup")
        if r.inputs.get("tags", {}).get("Name") == f"{SOURCE}-db"
    ]
    assert len(tagged) == 1
