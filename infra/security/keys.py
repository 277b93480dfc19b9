"""Customer-managed KMS keys, one per purpose, so each can be audited and revoked on its own."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.cluster.iam import POLICY_VERSION
from infra.component import PlatformComponent
from infra.naming import merge_tags

KEY_PURPOSES: tuple[str, ...] = ("eks", "ebs", "msk", "rds", "s3", "ecr", "logs", "secrets")
"""eks: Kubernetes secrets envelope; ebs: node volumes; msk/rds/s3/ecr: data at rest;
logs: CloudWatch log groups (flow logs, control plane, broker logs)."""

KEY_USE_ACTIONS: tuple[str, ...] = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
)
"""What a service granted use of a key (not its administration) may do with it."""


def key_policy(account_id: str, region: str, purpose: str) -> str:
    """Key policy: the account administers the key; some services get a scoped grant.

    CloudWatch Logs encrypts with the key on the service's behalf, so it needs a grant in the
    key policy itself, limited to log groups of this account and region.
    """
    statements: list[dict[str, object]] = [
        {
            "Sid": "AccountAdministers",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",  # the account-root statement AWS requires on every key policy
            "Resource": "*",
        }
    ]
    if purpose == "logs":
        statements.append(
            {
                "Sid": "CloudWatchLogsUse",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": list(KEY_USE_ACTIONS),
                "Resource": "*",
                "Condition": {
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:aws:logs:{region}:{account_id}:log-group:*"
                        )
                    }
                },
            }
        )
    if purpose == "ebs":
        # Managed node groups launch instances through the Auto Scaling service-linked role;
        # the account-root statement does not cover service-linked roles, so without this grant
        # nodes with encrypted root volumes never start.
        autoscaling = (
            f"arn:aws:iam::{account_id}:role/aws-service-role/autoscaling.amazonaws.com/"
            "AWSServiceRoleForAutoScaling"
        )
        statements.append(
            {
                "Sid": "AutoScalingUsesKeyForNodeVolumes",
                "Effect": "Allow",
                "Principal": {"AWS": autoscaling},
                "Action": list(KEY_USE_ACTIONS),
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": "AutoScalingCreatesGrants",
                "Effect": "Allow",
                "Principal": {"AWS": autoscaling},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return json.dumps({"Version": POLICY_VERSION, "Statement": statements})


def _render_key_policy(values: list[str]) -> str:
    account_id, region, purpose = values
    return key_policy(account_id, region, purpose)


@dataclass(frozen=True)
class KeysArgs:
    """Inputs of the Keys component.

    - name_prefix: alias prefix, e.g. `plat-prod` gives `alias/plat-prod-rds`.
    - purposes: which keys to create (subset of KEY_PURPOSES).
    - deletion_window_days: 7..30; the window in which a scheduled deletion can be cancelled.
    - protect: Pulumi `protect` on the keys (data encrypted with a deleted key is lost).
    - tags: base + user tags.
    """

    name_prefix: str
    purposes: Sequence[str] = KEY_PURPOSES
    deletion_window_days: int = 30
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        unknown = sorted(set(self.purposes) - set(KEY_PURPOSES))
        if unknown:
            raise ValueError(f"purposes: {unknown} unknown; allowed: {', '.join(KEY_PURPOSES)}")
        if not 7 <= self.deletion_window_days <= 30:
            raise ValueError(f"deletion_window_days: {self.deletion_window_days}; allowed: 7..30")


class Keys(PlatformComponent[KeysArgs]):
    """One rotating customer-managed key (with alias) per purpose."""

    TYPE_TOKEN = "platform:security:Keys"

    arns: dict[str, pulumi.Output[str]]

    def declare(self, name: str, args: KeysArgs) -> dict[str, Any]:
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self))
        self.arns = {}
        for purpose in args.purposes:
            physical = f"{args.name_prefix}-{purpose}"
            key = aws.kms.Key(
                f"{name}-{purpose}",
                description=f"{physical}: encryption at rest for {purpose}",
                enable_key_rotation=True,
                deletion_window_in_days=args.deletion_window_days,
                policy=pulumi.Output.all(identity.account_id, region.region, purpose).apply(
                    _render_key_policy
                ),
                tags=merge_tags(physical, args.tags, {"purpose": purpose}),
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
            aws.kms.Alias(
                f"{name}-{purpose}-alias",
                name=f"alias/{physical}",
                target_key_id=key.key_id,
                opts=self.child,
            )
            self.arns[purpose] = key.arn
        return {"arns": self.arns}
