"""Each app's database credentials: one Secrets Manager secret per app, declared WITHOUT a value.

The db-roles Job (`python -m apps.db_roles`, PreSync, its own Pod Identity role) creates the
app's PostgreSQL roles and publishes the login into this secret; the app's role may read its own
secret only, and reads it for every new connection, so a rotation needs no restart. The value
never passes through Pulumi state, and no app (nor External Secrets) reads the master secret.

Why Secrets Manager and not IAM database authentication: the same path runs in every place this
repository runs the apps (the deploy rehearsal and the tests on real PostgreSQL, which cannot
verify RDS IAM tokens), and a new connection costs one API call instead of a token per connect
counted against RDS's IAM-auth connection rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.contracts import APPS, db_credentials_secret_id
from infra.naming import merge_tags


@dataclass(frozen=True)
class DatabaseCredentialsArgs:
    """Inputs: the stack's name prefix, the KMS key (the database's), deletion behaviour, tags.

    Attributes:
        recovery_window_days: days a deleted secret can still be restored (0: immediately,
            for stacks that are torn down and re-created; 7..30 otherwise).
    """

    name_prefix: str
    kms_key_arn: pulumi.Input[str] | None
    recovery_window_days: int = 7
    tags: dict[str, str] = field(default_factory=dict)


class DatabaseCredentials(pulumi.ComponentResource):
    """One empty secret per app that uses the database."""

    secret_arns: dict[str, pulumi.Output[str]]
    secret_ids: dict[str, str]

    def __init__(
        self, name: str, args: DatabaseCredentialsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.recovery_window_days != 0 and not 7 <= args.recovery_window_days <= 30:
            raise ValueError(
                f"recovery_window_days: {args.recovery_window_days}; allowed: 0 or 7..30"
            )
        super().__init__("platform:platform:DatabaseCredentials", name, None, opts)
        self.secret_arns, self.secret_ids = {}, {}
        for app in APPS:
            if not app.uses_database:
                continue
            secret_id = db_credentials_secret_id(args.name_prefix, app.name)
            secret = aws.secretsmanager.Secret(
                f"{name}-{app.name}",
                name=secret_id,
                description=f"PostgreSQL login of {app.name} (written by the db-roles Job)",
                kms_key_id=args.kms_key_arn,
                recovery_window_in_days=args.recovery_window_days,
                tags=merge_tags(secret_id, args.tags, {}),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.secret_arns[app.name] = secret.arn
            self.secret_ids[app.name] = secret_id
        self.register_outputs({"secret_arns": self.secret_arns, "secret_ids": self.secret_ids})
