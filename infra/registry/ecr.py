"""Amazon ECR: one private repository per bundled app, immutable tags, scanned on push."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.component import PlatformComponent
from infra.contracts import APP_NAMES
from infra.naming import merge_tags
from infra.registry.lifecycle import (
    KEEP_TAGGED_IMAGES,
    UNTAGGED_EXPIRY_DAYS,
    lifecycle_policy_json,
    repository_name,
)


@dataclass(frozen=True)
class RegistryArgs:
    """Inputs of `Registry`.

    Attributes:
        kms_key_arn: Customer KMS key encrypting the images.
        repository_prefix: Namespace of the repositories (`<prefix>/<app>`); "" for bare names.
        app_names: One repository per app; defaults to the bundled apps in `infra.contracts`.
        untagged_expiry_days: Untagged images (failed or superseded pushes) expire after this.
        keep_tagged_images: Newest tagged images kept per repository.
        protect: Pulumi `protect` on the repositories; unprotected ones may be deleted with
            their images (`force_delete`), so a dev stack can be torn down.
        tags: Base tags (project, stack, managed-by) plus user tags.
    """

    kms_key_arn: pulumi.Input[str]
    repository_prefix: str = ""
    app_names: Sequence[str] = APP_NAMES
    untagged_expiry_days: int = UNTAGGED_EXPIRY_DAYS
    keep_tagged_images: int = KEEP_TAGGED_IMAGES
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise `ValueError` naming the field, its value and what is allowed."""
        if not self.app_names:
            raise ValueError("app_names: empty; allowed: one or more app names")
        duplicates = sorted({a for a in self.app_names if list(self.app_names).count(a) > 1})
        if duplicates:
            raise ValueError(
                f"app_names: {duplicates} appear more than once; allowed: unique names"
            )
        for app in self.app_names:
            repository_name(self.repository_prefix, app)
        # Builds the document once to surface bad retention numbers before any child exists.
        lifecycle_policy_json(self.untagged_expiry_days, self.keep_tagged_images)


class Registry(PlatformComponent[RegistryArgs]):
    """ECR repositories for the bundled apps, keyed by app name."""

    TYPE_TOKEN = "platform:registry:Registry"

    repository_urls: dict[str, pulumi.Output[str]]
    repository_arns: dict[str, pulumi.Output[str]]

    def declare(self, name: str, args: RegistryArgs) -> dict[str, Any]:
        policy = lifecycle_policy_json(args.untagged_expiry_days, args.keep_tagged_images)

        self.repository_urls = {}
        self.repository_arns = {}
        for app in args.app_names:
            physical = repository_name(args.repository_prefix, app)
            repository = aws.ecr.Repository(
                f"{name}-{app}",
                name=physical,
                image_tag_mutability="IMMUTABLE",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True,
                ),
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(
                        encryption_type="KMS",
                        kms_key=args.kms_key_arn,
                    )
                ],
                force_delete=not args.protect,
                tags=merge_tags(physical, args.tags, {}),
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{app}-lifecycle",
                repository=repository.name,
                policy=policy,
                opts=self.child,
            )
            self.repository_urls[app] = repository.repository_url
            self.repository_arns[app] = repository.arn

        return {
            "repository_urls": self.repository_urls,
            "repository_arns": self.repository_arns,
        }
