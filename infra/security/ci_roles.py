"""The CI's read-only preview role of one environment (`platform-preview-<env>` in Jenkins).

Trusted pull requests run `pulumi preview` of their own code with it, and the scheduled drift
job runs `pulumi preview --refresh` with it. It can read the cloud resources the program
manages, read (never write) the stack's state bucket, and decrypt with the stack's secrets key;
it can change nothing. A DIY-backend `pulumi preview` takes no lock and writes no state
(pulumi/pulumi `pkg/backend/diy/backend.go`: `Preview` goes straight to a dry-run `apply`, and
the snapshot and history are saved only when not a dry run), so no write is needed.

The state bucket and the secrets key are made by `platform bootstrap` (boto3, before the first
`pulumi up`), so they are referenced by name here: `<prefix>-pulumi-state-<account>` and
`alias/<prefix>-pulumi-secrets` (the names of `platform_cli.aws_names`; a test checks they agree).
Decrypt is scoped to that one key through `kms:ResourceAliases`, because the key's id is not
known to the program.

The documents are pure functions; the component only turns them into resources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.cluster import iam
from infra.component import PlatformComponent
from infra.naming import merge_tags, physical_name

PRINCIPAL_TAG = "platform-ci"
"""Only principals of the account tagged `platform-ci=preview-<env>` may assume the role."""

MAX_SESSION_SECONDS = 3600

EKS_VIEW_ACCESS_POLICY = "AmazonEKSAdminViewPolicy"
"""Read every Kubernetes object (Secrets too: the Helm releases the program manages keep their
state in Secrets, and a preview must read them to diff)."""

READ_ACTIONS: tuple[str, ...] = (
    "application-autoscaling:Describe*",
    "application-autoscaling:ListTagsForResource",
    "ec2:Describe*",
    "ec2:GetLaunchTemplateData",
    "ecr:Describe*",
    "ecr:GetLifecyclePolicy",
    "ecr:GetRepositoryPolicy",
    "ecr:ListImages",
    "ecr:ListTagsForResource",
    "eks:Describe*",
    "eks:List*",
    "iam:Get*",
    "iam:List*",
    "kafka:Describe*",
    "kafka:GetBootstrapBrokers",
    "kafka:List*",
    "kms:Describe*",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:List*",
    "logs:Describe*",
    "logs:ListTagsForResource",
    "logs:ListTagsLogGroup",
    "rds:Describe*",
    "rds:ListTagsForResource",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucket*",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetReplicationConfiguration",
    "s3:ListAllMyBuckets",
    "sts:GetCallerIdentity",
)
"""Describe/Get/List of the services the program declares, and nothing that reads data:
no `s3:GetObject` outside the state bucket, no `secretsmanager:GetSecretValue`, no image pulls."""

READ_VERBS: tuple[str, ...] = ("Describe", "Get", "List")

STATE_WRITE_ACTIONS: tuple[str, ...] = (
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutEncryptionConfiguration",
)


def state_bucket_name(name_prefix: str, account_id: str) -> str:
    """The state bucket `platform bootstrap` creates (S3 names are global: account suffix)."""
    return f"{name_prefix}-pulumi-state-{account_id}"


def secrets_key_alias(name_prefix: str) -> str:
    """The alias of the key Pulumi's secrets provider (and the state bucket's SSE-KMS) uses."""
    return f"alias/{name_prefix}-pulumi-secrets"


def preview_trust_policy(account_id: str, environment: str) -> dict[str, Any]:
    """Principals of this account tagged `platform-ci=preview-<env>` may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CiPreviewPrincipals",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {f"aws:PrincipalTag/{PRINCIPAL_TAG}": f"preview-{environment}"}
                },
            }
        ],
    }


def preview_policy(account_id: str, region: str, name_prefix: str) -> dict[str, Any]:
    """Read the cloud, read the state, decrypt with the stack's secrets key; no write."""
    bucket = f"arn:aws:s3:::{state_bucket_name(name_prefix, account_id)}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadManagedResources",
                "Effect": "Allow",
                "Action": list(READ_ACTIONS),
                "Resource": "*",
            },
            {
                "Sid": "ListStateBucket",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": bucket,
            },
            {
                "Sid": "ReadStateObjects",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": f"{bucket}/*",
            },
            {
                "Sid": "DecryptWithStackSecretsKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt"],
                "Resource": f"arn:aws:kms:{region}:{account_id}:key/*",
                "Condition": {
                    "ForAnyValue:StringEquals": {
                        "kms:ResourceAliases": secrets_key_alias(name_prefix)
                    }
                },
            },
            {
                # Belt and braces: even a policy attached to the role later cannot write state.
                "Sid": "NeverWriteState",
                "Effect": "Deny",
                "Action": list(STATE_WRITE_ACTIONS),
                "Resource": [bucket, f"{bucket}/*"],
            },
        ],
    }


def is_read_only_action(action: str) -> bool:
    """`service:Verb...` whose verb is a Describe/Get/List (a wildcard only after such a verb)."""
    service, _, verb = action.partition(":")
    if not service or not verb or verb == "*":
        return False
    return verb.startswith(READ_VERBS)


@dataclass(frozen=True)
class CiRolesArgs:
    """Inputs of the CI roles.

    - name_prefix: physical name prefix (`plat-<env>`); also names the state bucket and key.
    - environment: the stack (`dev`, `staging`, `prod`), part of the trust condition.
    - region: the stack's region (the secrets key lives there).
    - cluster_name: the EKS cluster the role may read (an access entry), or None.
    - tags: base + user tags.
    """

    name_prefix: str
    environment: str
    region: str
    cluster_name: pulumi.Input[str] | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.name_prefix:
            raise ValueError("name_prefix: ''; allowed: a non-empty prefix such as 'plat-dev'")
        if not self.environment.isidentifier():
            raise ValueError(f"environment: {self.environment!r}; allowed: a stack name")
        if not self.region:
            raise ValueError("region: ''; allowed: an AWS region such as eu-west-1")


class CiRoles(PlatformComponent[CiRolesArgs]):
    """The read-only preview role (and its EKS view access) of one environment."""

    TYPE_TOKEN = "platform:security:CiRoles"

    preview_role_arn: pulumi.Output[str]

    def declare(self, name: str, args: CiRolesArgs) -> dict[str, Any]:
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        role_name = physical_name(args.name_prefix, "ci-preview", 64)
        role = aws.iam.Role(
            f"{name}-preview",
            name=role_name,
            description=f"CI read-only preview of {args.environment}: read, never write",
            assume_role_policy=account.apply(
                lambda acct: json.dumps(preview_trust_policy(acct, args.environment))
            ),
            max_session_duration=MAX_SESSION_SECONDS,
            tags=merge_tags(role_name, args.tags, {}),
            opts=self.child,
        )
        aws.iam.RolePolicy(
            f"{name}-preview-read",
            role=role.id,
            name="read-only-preview",
            policy=account.apply(
                lambda acct: json.dumps(preview_policy(acct, args.region, args.name_prefix))
            ),
            opts=self.child,
        )
        if args.cluster_name is not None:
            entry = aws.eks.AccessEntry(
                f"{name}-preview-eks",
                cluster_name=args.cluster_name,
                principal_arn=role.arn,
                type="STANDARD",
                tags=merge_tags(f"{role_name}-eks", args.tags, {}),
                opts=self.child,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-preview-eks-view",
                cluster_name=args.cluster_name,
                principal_arn=entry.principal_arn,  # waits for the entry
                policy_arn=iam.eks_access_policy_arn(EKS_VIEW_ACCESS_POLICY),
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=self.child,
            )
        self.preview_role_arn = role.arn
        return {"preview_role_arn": self.preview_role_arn}
