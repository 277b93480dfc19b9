"""Restore the stack's RDS instance into a NEW instance: to a point in time, or from a snapshot.

Never in place: the target is always a fresh identifier (RDS itself can only restore into a new
instance, and we refuse the source's name and any existing one on top). The new instance gets
the source's placement, read from the source instance itself: DB subnet group, VPC security
groups, parameter group, storage KMS key (RDS keeps the source's or the snapshot's key; the
restore API has no key parameter, so it is checked afterwards), the KMS key of the RDS-managed
master secret, and the settings the Pulumi program declares (class, Multi-AZ, storage, backups,
IAM auth, log exports, deletion protection, never public).

When the source instance is gone (deleted, leaving its `-final` snapshot), its placement is
derived from the stack's naming rules instead (`placement_from_stack`), the names
`infra/data/database.py` gives the subnet group, parameter group and security group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import ClientError

from infra.config import PlatformConfig
from infra.data.rds_parameters import check_identifier
from infra.naming import physical_name

RESTORED_FROM_TAG = "restored-from"
RESTORE_POINT_TAG = "restore-point"


class RestoreError(RuntimeError):
    """The restore cannot go ahead (bad input, emulator or AWS refusal); the message says why."""


@dataclass(frozen=True)
class Placement:
    """Where and how the restored instance runs: copied from the source (or the stack)."""

    subnet_group: str
    security_group_ids: tuple[str, ...]
    parameter_group: str
    kms_key_id: str | None
    secret_kms_key_id: str | None
    instance_class: str
    multi_az: bool
    storage_type: str | None
    max_allocated_storage: int | None
    backup_retention_days: int
    deletion_protection: bool
    iam_auth: bool
    log_exports: tuple[str, ...]
    copy_tags_to_snapshot: bool
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Instance:
    """The parts of `DescribeDBInstances` a restore reads."""

    identifier: str
    status: str
    address: str | None
    port: int | None
    db_name: str | None
    master_username: str | None
    secret_arn: str | None
    secret_status: str | None
    storage_encrypted: bool
    publicly_accessible: bool
    created: datetime | None
    latest_restorable: datetime | None
    backup_retention_days: int
    placement: Placement

    @classmethod
    def of(cls, raw: dict[str, Any], tags: list[dict[str, str]] | None = None) -> Instance:
        secret = raw.get("MasterUserSecret") or {}
        endpoint = raw.get("Endpoint") or {}
        groups = raw.get("DBParameterGroups") or [{}]
        placement = Placement(
            subnet_group=(raw.get("DBSubnetGroup") or {}).get("DBSubnetGroupName", ""),
            security_group_ids=tuple(
                g["VpcSecurityGroupId"] for g in raw.get("VpcSecurityGroups", [])
            ),
            parameter_group=groups[0].get("DBParameterGroupName", ""),
            kms_key_id=raw.get("KmsKeyId"),
            secret_kms_key_id=secret.get("KmsKeyId"),
            instance_class=raw.get("DBInstanceClass", ""),
            multi_az=bool(raw.get("MultiAZ")),
            storage_type=raw.get("StorageType"),
            max_allocated_storage=raw.get("MaxAllocatedStorage"),
            backup_retention_days=int(raw.get("BackupRetentionPeriod", 0)),
            deletion_protection=bool(raw.get("DeletionProtection")),
            iam_auth=bool(raw.get("IAMDatabaseAuthenticationEnabled")),
            log_exports=tuple(raw.get("EnabledCloudwatchLogsExports", [])),
            copy_tags_to_snapshot=bool(raw.get("CopyTagsToSnapshot")),
            tags=tuple((t["Key"], t["Value"]) for t in (tags or raw.get("TagList") or [])),
        )
        return cls(
            identifier=raw["DBInstanceIdentifier"],
            status=raw.get("DBInstanceStatus", "?"),
            address=endpoint.get("Address"),
            port=endpoint.get("Port"),
            db_name=raw.get("DBName"),
            master_username=raw.get("MasterUsername"),
            secret_arn=secret.get("SecretArn"),
            secret_status=secret.get("SecretStatus"),
            storage_encrypted=bool(raw.get("StorageEncrypted")),
            publicly_accessible=bool(raw.get("PubliclyAccessible")),
            created=_utc(raw.get("InstanceCreateTime")),
            latest_restorable=_utc(raw.get("LatestRestorableTime")),
            backup_retention_days=int(raw.get("BackupRetentionPeriod", 0)),
            placement=placement,
        )


@dataclass(frozen=True)
class RestoreWindow:
    earliest: datetime
    latest: datetime
    source: str
    """Where `earliest` comes from: RDS's reported window, or derived from retention."""

    def contains(self, point: datetime) -> bool:
        return self.earliest <= point <= self.latest


@dataclass(frozen=True)
class Snapshot:
    identifier: str
    instance: str
    kind: str
    status: str
    created: datetime | None
    kms_key_id: str | None
    encrypted: bool

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Snapshot:
        return cls(
            identifier=raw["DBSnapshotIdentifier"],
            instance=raw.get("DBInstanceIdentifier", ""),
            kind=raw.get("SnapshotType", ""),
            status=raw.get("Status", ""),
            created=_utc(raw.get("SnapshotCreateTime")),
            kms_key_id=raw.get("KmsKeyId"),
            encrypted=bool(raw.get("Encrypted")),
        )


def _utc(value: Any) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _error(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{exc.operation_name}: {error.get('Code', 'error')}: {error.get('Message', '')}"


# --- reading --------------------------------------------------------------------------------------


def _described(rds: Any, noun: Literal["Instance", "Snapshot"], identifier: str) -> list[Any]:
    """`DescribeDB<noun>s` of one identifier (noun: Instance, Snapshot), as RDS names its calls,
    lists, parameters and errors; none when the error code is `DB<noun>NotFound`, with or
    without its `Fault` suffix."""
    describe = getattr(rds, f"describe_db_{noun.lower()}s")
    try:
        return list(describe(**{f"DB{noun}Identifier": identifier})[f"DB{noun}s"])
    except ClientError as exc:
        missing = f"DB{noun}NotFound"
        if exc.response.get("Error", {}).get("Code") in (missing, f"{missing}Fault"):
            return []
        raise RestoreError(_error(exc)) from None


def find_instance(rds: Any, identifier: str) -> Instance | None:
    found = _described(rds, "Instance", identifier)
    if not found:
        return None
    raw = found[0]
    tags = None
    if raw.get("TagList") is None and raw.get("DBInstanceArn"):
        tags = rds.list_tags_for_resource(ResourceName=raw["DBInstanceArn"]).get("TagList")
    return Instance.of(raw, tags)


def instance_identifiers(rds: Any) -> list[str]:
    pages = rds.get_paginator("describe_db_instances").paginate()
    return sorted(i["DBInstanceIdentifier"] for page in pages for i in page["DBInstances"])


def restorable_window(rds: Any, instance: Instance) -> RestoreWindow:
    """The span a point-in-time restore may target.

    RDS reports it in `DescribeDBInstanceAutomatedBackups` (`RestoreWindow`); where that is
    absent (moto does not report it), the earliest point is derived the way RDS defines it:
    the backup retention period back from the latest restorable time, not before the
    instance existed.
    """
    if instance.latest_restorable is None or instance.backup_retention_days == 0:
        raise RestoreError(
            f"{instance.identifier}: no point-in-time restore (automated backups are off: "
            f"BackupRetentionPeriod={instance.backup_retention_days})"
        )
    latest = instance.latest_restorable
    try:
        backups = rds.describe_db_instance_automated_backups(
            DBInstanceIdentifier=instance.identifier
        ).get("DBInstanceAutomatedBackups", [])
    except ClientError:
        backups = []
    for backup in backups:
        window = backup.get("RestoreWindow") or {}
        earliest = _utc(window.get("EarliestTime"))
        if earliest is not None:
            return RestoreWindow(earliest, _utc(window.get("LatestTime")) or latest, "RDS")
    earliest = latest - timedelta(days=instance.backup_retention_days)
    if instance.created is not None:
        earliest = max(earliest, instance.created)
    return RestoreWindow(earliest, latest, "retention period")


def find_snapshot(rds: Any, identifier: str) -> Snapshot | None:
    found = _described(rds, "Snapshot", identifier)
    return Snapshot.of(found[0]) if found else None


def snapshots_of(rds: Any, instance: str) -> list[Snapshot]:
    pages = rds.get_paginator("describe_db_snapshots").paginate(DBInstanceIdentifier=instance)
    found = [Snapshot.of(s) for page in pages for s in page["DBSnapshots"]]
    return sorted(found, key=lambda s: s.created or datetime.min.replace(tzinfo=UTC))


# --- deciding ------------------------------------------------------------------------------------


def target_identifier(source: str, point: datetime) -> str:
    """`<source>-restore-YYYYMMDD-HHMM` (the restore point, UTC), within RDS's rules."""
    name = physical_name(source, f"restore-{point.astimezone(UTC):%Y%m%d-%H%M}")
    check_identifier(name)
    return name


def placement_from_stack(
    cfg: PlatformConfig, ec2: Any, identifier: str, snapshot: Snapshot
) -> Placement:
    """The placement `infra/data/database.py` declares, for a source that no longer exists."""
    db = cfg.database
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "tag:Name", "Values": [f"{identifier}-db"]}]
    )["SecurityGroups"]
    if not groups:
        raise RestoreError(
            f"no security group tagged Name={identifier}-db: the stack's network for "
            f"{identifier} is gone too; run `pulumi up` for the stack first"
        )
    return Placement(
        subnet_group=f"{identifier}-isolated",
        security_group_ids=tuple(sorted(g["GroupId"] for g in groups)),
        parameter_group=f"{identifier}-{db.parameter_group_family}",
        kms_key_id=snapshot.kms_key_id,
        # The program encrypts the master secret with the instance's own key.
        secret_kms_key_id=snapshot.kms_key_id,
        instance_class=db.instance_class,
        multi_az=db.multi_az,
        storage_type="gp3",
        max_allocated_storage=db.max_allocated_storage_gib,
        backup_retention_days=db.backup_retention_days,
        deletion_protection=cfg.protection.deletion_protection,
        iam_auth=True,
        log_exports=("postgresql", "upgrade"),
        copy_tags_to_snapshot=True,
        tags=tuple({**cfg.base_tags, **cfg.tags}.items()),
    )


@dataclass(frozen=True)
class RestoreRequest:
    """One RDS restore call, fully decided (what `--dry-run` would show)."""

    source: str
    target: str
    point: datetime
    mode: str  # "point-in-time" | "latest" | "snapshot"
    snapshot: str | None
    placement: Placement
    extra_tags: tuple[tuple[str, str], ...] = field(default=())

    def operation(self) -> str:
        if self.mode == "snapshot":
            return "restore_db_instance_from_db_snapshot"
        return "restore_db_instance_to_point_in_time"

    def arguments(self) -> dict[str, Any]:
        p = self.placement
        tags = dict(p.tags) | dict(self.extra_tags)
        tags["Name"] = self.target
        common: dict[str, Any] = {
            "DBSubnetGroupName": p.subnet_group,
            "VpcSecurityGroupIds": list(p.security_group_ids),
            "DBParameterGroupName": p.parameter_group,
            "DBInstanceClass": p.instance_class,
            "MultiAZ": p.multi_az,
            "PubliclyAccessible": False,
            "AutoMinorVersionUpgrade": False,
            "CopyTagsToSnapshot": p.copy_tags_to_snapshot,
            "DeletionProtection": p.deletion_protection,
            "EnableIAMDatabaseAuthentication": p.iam_auth,
            "EnableCloudwatchLogsExports": list(p.log_exports),
            "BackupRetentionPeriod": p.backup_retention_days,
            # A new RDS-managed secret for the new instance, under the source secret's key.
            "ManageMasterUserPassword": True,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        }
        if p.storage_type:
            common["StorageType"] = p.storage_type
        if p.secret_kms_key_id:
            common["MasterUserSecretKmsKeyId"] = p.secret_kms_key_id
        if self.mode == "snapshot":
            return {
                "DBSnapshotIdentifier": self.snapshot,
                "DBInstanceIdentifier": self.target,
            } | common
        where: dict[str, Any] = (
            {"UseLatestRestorableTime": True}
            if self.mode == "latest"
            else {"RestoreTime": self.point}
        )
        if p.max_allocated_storage:
            common["MaxAllocatedStorage"] = p.max_allocated_storage
        return {
            "SourceDBInstanceIdentifier": self.source,
            "TargetDBInstanceIdentifier": self.target,
            **where,
        } | common


def with_restore_tags(request: RestoreRequest) -> RestoreRequest:
    return replace(
        request,
        extra_tags=(
            (RESTORED_FROM_TAG, request.snapshot or request.source),
            (RESTORE_POINT_TAG, request.point.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
        ),
    )


# --- doing ---------------------------------------------------------------------------------------


def start_restore(rds: Any, request: RestoreRequest) -> Instance:
    try:
        raw = getattr(rds, request.operation())(**request.arguments())["DBInstance"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("DBInstanceAlreadyExists", "DBInstanceAlreadyExistsFault"):
            raise RestoreError(
                f"target {request.target!r} already exists; a restore never overwrites: pick "
                "another --target"
            ) from None
        raise RestoreError(_error(exc)) from None
    return Instance.of(raw)


def wait_available(
    rds: Any,
    identifier: str,
    *,
    timeout_s: float,
    poll_s: float = 15.0,
    on_status: Callable[[str, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Instance:
    """Poll until `identifier` is `available`; report each status; fail on a terminal one."""
    started = clock()
    while True:
        instance = find_instance(rds, identifier)
        status = instance.status if instance else "not found"
        elapsed = clock() - started
        if on_status is not None:
            on_status(status, elapsed)
        if instance is not None and status == "available":
            return instance
        if status in ("failed", "incompatible-restore", "incompatible-parameters", "deleting"):
            raise RestoreError(f"{identifier}: status {status!r}; the restore did not succeed")
        if elapsed >= timeout_s:
            raise RestoreError(
                f"{identifier}: still {status!r} after {timeout_s:.0f} s; it keeps restoring in "
                f"AWS: `platform restore repoint --target {identifier}` prints the next steps "
                "once it is available"
            )
        sleep(poll_s)


@dataclass(frozen=True)
class PlacementCheck:
    what: str
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def check_placement(expected: Placement, restored: Instance) -> list[PlacementCheck]:
    """The restored instance must sit where its source does, encrypted and private."""
    got = restored.placement
    return [
        PlacementCheck("subnet group", expected.subnet_group, got.subnet_group),
        PlacementCheck(
            "security groups",
            ",".join(sorted(expected.security_group_ids)),
            ",".join(sorted(got.security_group_ids)),
        ),
        PlacementCheck("parameter group", expected.parameter_group, got.parameter_group),
        PlacementCheck("storage KMS key", str(expected.kms_key_id), str(got.kms_key_id)),
        PlacementCheck(
            "master secret KMS key", str(expected.secret_kms_key_id), str(got.secret_kms_key_id)
        ),
        PlacementCheck("storage encrypted", "True", str(restored.storage_encrypted)),
        PlacementCheck("publicly accessible", "False", str(restored.publicly_accessible)),
    ]
