"""Amazon RDS for PostgreSQL: private, encrypted, TLS-only, with an RDS-managed master secret."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.component import PlatformComponent
from infra.contracts import POSTGRES_PORT
from infra.data.rds_parameters import (
    check_database_name,
    check_engine_version,
    check_identifier,
    final_snapshot_identifier,
    postgres_parameters,
    valid_performance_insights_retention,
)
from infra.naming import merge_tags

MASTER_USERNAME = "platform_admin"
"""Fixed master user; its password is generated and rotated by RDS in Secrets Manager."""

MIN_BACKUP_RETENTION_DAYS = 7
MAX_BACKUP_RETENTION_DAYS = 35


@dataclass(frozen=True)
class DatabaseArgs:
    """Inputs of `Database`.

    Attributes:
        identifier: Physical RDS instance identifier (lowercase, hyphens).
        engine_version: Pinned PostgreSQL major.minor, e.g. "16.6".
        parameter_group_family: Parameter group family matching the major, e.g. "postgres16".
        instance_class: e.g. "db.t4g.medium".
        allocated_storage_gib: Initial gp3 storage.
        max_allocated_storage_gib: Ceiling for RDS storage autoscaling (>= allocated).
        multi_az: Standby in a second AZ (prod).
        backup_retention_days: Automated backups kept, 7 to 35.
        database_name: Initial database created in the instance.
        performance_insights_retention_days: 7, 31 * n (n <= 23) or 731.
        vpc_id: VPC of the security group.
        subnet_ids: Isolated (data) subnets, at least two AZs.
        client_security_group_ids: Security groups allowed on 5432 (the EKS node SG).
        kms_key_arn: Customer KMS key for storage, Performance Insights and the master secret.
        deletion_protection: RDS deletion protection (prod).
        final_snapshot: Take `<identifier>-final` on delete (prod).
        protect: Pulumi `protect` on the instance (prod).
        tags: Base tags (project, stack, managed-by) plus user tags.
    """

    identifier: str
    engine_version: str
    parameter_group_family: str
    instance_class: str
    allocated_storage_gib: int
    max_allocated_storage_gib: int
    multi_az: bool
    backup_retention_days: int
    database_name: str
    performance_insights_retention_days: int
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    client_security_group_ids: Sequence[pulumi.Input[str]]
    kms_key_arn: pulumi.Input[str]
    deletion_protection: bool = True
    final_snapshot: bool = True
    protect: bool = True
    tags: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise `ValueError` naming the field, its value and what is allowed."""
        check_identifier(self.identifier)
        check_engine_version(self.engine_version, self.parameter_group_family)
        check_database_name(self.database_name)
        if not MIN_BACKUP_RETENTION_DAYS <= self.backup_retention_days <= MAX_BACKUP_RETENTION_DAYS:
            raise ValueError(
                f"backup_retention_days: {self.backup_retention_days}; allowed: "
                f"{MIN_BACKUP_RETENTION_DAYS} to {MAX_BACKUP_RETENTION_DAYS}"
            )
        if not 20 <= self.allocated_storage_gib <= 65536:
            raise ValueError(
                f"allocated_storage_gib: {self.allocated_storage_gib}; allowed: 20 to 65536"
            )
        if not self.allocated_storage_gib <= self.max_allocated_storage_gib <= 65536:
            raise ValueError(
                f"max_allocated_storage_gib: {self.max_allocated_storage_gib}; allowed: "
                f"allocated_storage_gib ({self.allocated_storage_gib}) to 65536"
            )
        if not valid_performance_insights_retention(self.performance_insights_retention_days):
            raise ValueError(
                f"performance_insights_retention_days: {self.performance_insights_retention_days}; "
                "allowed: 7, 31 * n for n in 1..23, or 731"
            )
        if len(self.subnet_ids) < 2:
            raise ValueError(
                f"subnet_ids: {len(self.subnet_ids)} subnet(s); allowed: isolated subnets in at "
                "least 2 AZs (an RDS subnet group needs two)"
            )
        if not self.client_security_group_ids:
            raise ValueError(
                "client_security_group_ids: empty; allowed: the EKS node security group (nothing "
                "else may reach the database, and CIDR sources are not offered)"
            )


class Database(PlatformComponent[DatabaseArgs]):
    """One RDS PostgreSQL instance in isolated subnets, reachable only from the client SGs."""

    TYPE_TOKEN = "platform:data:Database"

    address: pulumi.Output[str]
    port: pulumi.Output[int]
    db_name: pulumi.Output[str]
    master_secret_arn: pulumi.Output[str]
    instance_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def declare(self, name: str, args: DatabaseArgs) -> dict[str, Any]:
        subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets",
            name=f"{args.identifier}-isolated",
            description=f"Isolated subnets of {args.identifier}",
            subnet_ids=list(args.subnet_ids),
            tags=merge_tags(f"{args.identifier}-subnets", args.tags, {}),
            opts=self.child,
        )

        parameter_group = aws.rds.ParameterGroup(
            f"{name}-params",
            # The family is part of the name: a major upgrade replaces the group, and the new
            # one must exist (under another name) before the instance switches to it.
            name=f"{args.identifier}-{args.parameter_group_family}",
            family=args.parameter_group_family,
            description=f"TLS-only PostgreSQL with slow-query logging ({args.identifier})",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name=key, value=value)
                for key, value in postgres_parameters().items()
            ],
            tags=merge_tags(f"{args.identifier}-params", args.tags, {}),
            opts=self.child,
        )

        security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"PostgreSQL {args.identifier}: {POSTGRES_PORT} from cluster nodes only",
            vpc_id=args.vpc_id,
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    description="PostgreSQL clients (TLS enforced by the parameter group)",
                    protocol="tcp",
                    from_port=POSTGRES_PORT,
                    to_port=POSTGRES_PORT,
                    security_groups=list(args.client_security_group_ids),
                )
            ],
            # No egress rules: replies to clients need none (stateful), and the instance
            # initiates nothing into the VPC.
            tags=merge_tags(f"{args.identifier}-db", args.tags, {}),
            opts=self.child,
        )

        instance = aws.rds.Instance(
            f"{name}-instance",
            identifier=args.identifier,
            engine="postgres",
            engine_version=args.engine_version,
            # The version is pinned in stack config; upgrades go through a reviewed change.
            auto_minor_version_upgrade=False,
            allow_major_version_upgrade=False,
            instance_class=args.instance_class,
            db_name=args.database_name,
            port=POSTGRES_PORT,
            username=MASTER_USERNAME,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=args.kms_key_arn,
            iam_database_authentication_enabled=True,
            storage_type="gp3",
            allocated_storage=args.allocated_storage_gib,
            max_allocated_storage=args.max_allocated_storage_gib,
            storage_encrypted=True,
            kms_key_id=args.kms_key_arn,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[security_group.id],
            parameter_group_name=parameter_group.name,
            publicly_accessible=False,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=not args.final_snapshot,
            final_snapshot_identifier=(
                final_snapshot_identifier(args.identifier) if args.final_snapshot else None
            ),
            performance_insights_enabled=True,
            performance_insights_kms_key_id=args.kms_key_arn,
            performance_insights_retention_period=args.performance_insights_retention_days,
            enabled_cloudwatch_logs_exports=["postgresql", "upgrade"],
            tags=merge_tags(args.identifier, args.tags, {}),
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )

        self.address = instance.address
        self.port = instance.port
        self.db_name = instance.db_name
        self.master_secret_arn = instance.master_user_secrets.apply(_first_secret_arn)
        self.instance_arn = instance.arn
        self.security_group_id = security_group.id
        return {
            "address": self.address,
            "port": self.port,
            "db_name": self.db_name,
            "master_secret_arn": self.master_secret_arn,
            "instance_arn": self.instance_arn,
            "security_group_id": self.security_group_id,
        }


def _first_secret_arn(secrets: Sequence[aws.rds.outputs.InstanceMasterUserSecret] | None) -> str:
    """The ARN of the RDS-managed master secret (RDS creates exactly one)."""
    if not secrets or not secrets[0].secret_arn:
        raise ValueError(
            "master_user_secrets is empty: RDS did not report the managed master secret"
        )
    return secrets[0].secret_arn
