"""Secrets Manager secrets the apps' ExternalSecrets read, declared without a value.

Pulumi owns each secret's name, encryption and lifecycle; the value never passes through Pulumi
state: operators set it (`aws secretsmanager put-secret-value --secret-id <name> --secret-string
'{"NOTIFIER_WEBHOOK_URL": ..., ...}'`). Until they do, External Secrets cannot sync the target
Secret and the workload that mounts it does not start, which is the loud failure we want.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.component import PlatformComponent
from infra.naming import merge_tags

RECOVERY_WINDOW_DAYS = 7
"""A deleted secret can be restored for a week (AWS allows 7..30; 0 would delete at once)."""


@dataclass(frozen=True)
class AppSecretsArgs:
    """Inputs of the app secrets.

    Attributes:
        secrets: role -> physical secret name (e.g. `notifier-channels` ->
            `plat-dev/notifier-channels`, from `infra.contracts.notifier_channels_secret_id`).
        kms_key_arn: the CMK that encrypts them.
        protect: `protect` on each secret (prod).
        tags: base + user tags.
    """

    secrets: Mapping[str, str]
    kms_key_arn: pulumi.Input[str]
    protect: bool = False
    tags: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.secrets:
            raise ValueError("secrets: empty; allowed: at least one role -> secret name")
        bad = sorted(name for name in self.secrets.values() if not name or name.startswith("/"))
        if bad:
            raise ValueError(f"secrets: invalid names {bad}; allowed: '<prefix>/<name>'")


class AppSecrets(PlatformComponent[AppSecretsArgs]):
    """One value-less, KMS-encrypted Secrets Manager secret per role."""

    TYPE_TOKEN = "platform:security:AppSecrets"

    arns: dict[str, pulumi.Output[str]]

    def declare(self, name: str, args: AppSecretsArgs) -> dict[str, Any]:
        self.arns = {}
        for role, physical in sorted(args.secrets.items()):
            secret = aws.secretsmanager.Secret(
                f"{name}-{role}",
                name=physical,
                description=f"{physical}: set its value with put-secret-value (JSON object)",
                kms_key_id=args.kms_key_arn,
                recovery_window_in_days=RECOVERY_WINDOW_DAYS,
                tags=merge_tags(physical, args.tags, {"consumer": role}),
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
            self.arns[role] = secret.arn
        return {"arns": self.arns}
