"""RDS: private, TLS forced by its parameter group, backed up, and hard to delete in prod."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import rule
from infra.policies.encryption import RDS_INSTANCE
from infra.policies.model import ResourceView, RuleContext
from infra.policies.values import as_list, as_number, get, is_true, non_empty_string

RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
MIN_BACKUP_DAYS = 7
MIN_BACKUP_DAYS_PROD = 30


@rule("rds-not-public", "RDS instances are not publicly accessible.", types=[RDS_INSTANCE])
def rds_not_public(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if is_true(inputs.get("publiclyAccessible")):
        yield "RDS instance is publicly accessible: set publiclyAccessible=false"


def _forces_ssl(group: ResourceView) -> bool:
    for parameter in as_list(group.inputs.get("parameters")):
        if get(parameter, "name") == "rds.force_ssl" and str(get(parameter, "value")) == "1":
            return True
    return False


def _parameter_groups(inputs: Mapping[str, Any], context: RuleContext) -> list[ResourceView]:
    """The parameter group(s) the instance uses: by dependency first, then by physical name."""
    groups = [g for g in context.referenced("parameterGroupName") if g.type == RDS_PARAMETER_GROUP]
    if groups:
        return groups
    name = inputs.get("parameterGroupName")
    return [g for g in context.of_type([RDS_PARAMETER_GROUP]) if g.inputs.get("name") == name]


@rule(
    "rds-ssl-forced",
    "RDS instances use a parameter group that sets rds.force_ssl=1.",
    types=[RDS_INSTANCE],
    needs_stack=True,
)
def rds_ssl_forced(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    name = inputs.get("parameterGroupName")
    groups = _parameter_groups(inputs, context)
    if not groups:
        where = (
            f"parameter group {name!r} is not declared in this stack"
            if name
            else ("no parameterGroupName: the default group does not force TLS")
        )
        yield f"RDS TLS cannot be shown to be forced ({where}); use a group with rds.force_ssl=1"
    elif not any(_forces_ssl(group) for group in groups):
        yield (
            f"parameter group {groups[0].name} does not set rds.force_ssl=1, so clients may "
            "connect without TLS"
        )


@rule(
    "rds-backup-retention",
    "RDS keeps automated backups for at least 7 days (30 in prod).",
    types=[RDS_INSTANCE],
)
def rds_backup_retention(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    minimum = MIN_BACKUP_DAYS_PROD if context.is_prod else MIN_BACKUP_DAYS
    days = as_number(inputs.get("backupRetentionPeriod"))
    if days is None or days < minimum:
        shown = "not set" if days is None else f"{int(days)} days"
        yield (
            f"backupRetentionPeriod is {shown}; allowed in {context.stack}: {minimum} days or more"
        )


@rule(
    "rds-deletion-protection-prod",
    "Prod RDS instances have deletion protection and take a final snapshot.",
    types=[RDS_INSTANCE],
)
def rds_deletion_protection_prod(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if not context.is_prod:
        return
    if not is_true(inputs.get("deletionProtection")):
        yield "prod RDS instance has no deletion protection: set deletionProtection=true"
    if is_true(inputs.get("skipFinalSnapshot")) or not non_empty_string(
        inputs.get("finalSnapshotIdentifier")
    ):
        yield (
            "prod RDS instance would be deleted without a final snapshot: set "
            "skipFinalSnapshot=false and finalSnapshotIdentifier"
        )
