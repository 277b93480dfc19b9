"""ECR lifecycle policy documents and repository naming, as pure functions."""

from __future__ import annotations

import json
import re

UNTAGGED_EXPIRY_DAYS = 7
KEEP_TAGGED_IMAGES = 30

# ECR repository names: lowercase path segments separated by '/', 2-256 characters.
_REPOSITORY_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


def lifecycle_policy(
    untagged_expiry_days: int = UNTAGGED_EXPIRY_DAYS,
    keep_tagged_images: int = KEEP_TAGGED_IMAGES,
) -> dict[str, object]:
    """Expire untagged images after some days and keep only the newest tagged images.

    Tags are immutable, so every deployable build has its own tag; GitOps pins the current one,
    and keeping the last N leaves room for rollbacks without growing the bill forever.
    """
    if untagged_expiry_days < 1:
        raise ValueError(f"untagged_expiry_days: {untagged_expiry_days}; allowed: 1 or more")
    if keep_tagged_images < 1:
        raise ValueError(f"keep_tagged_images: {keep_tagged_images}; allowed: 1 or more")
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images after {untagged_expiry_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_expiry_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the last {keep_tagged_images} tagged images",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_tagged_images,
                },
                "action": {"type": "expire"},
            },
        ]
    }


def lifecycle_policy_json(
    untagged_expiry_days: int = UNTAGGED_EXPIRY_DAYS,
    keep_tagged_images: int = KEEP_TAGGED_IMAGES,
) -> str:
    """The policy as ECR expects it: a JSON string (sorted keys, so diffs stay stable)."""
    return json.dumps(lifecycle_policy(untagged_expiry_days, keep_tagged_images), sort_keys=True)


def repository_name(prefix: str, app: str) -> str:
    """`<prefix>/<app>`, or just `<app>` without a prefix; fails naming the bad part."""
    name = f"{prefix}/{app}" if prefix else app
    if not 2 <= len(name) <= 256 or not _REPOSITORY_NAME.match(name):
        raise ValueError(
            f"repository name {name!r} (prefix {prefix!r}, app {app!r}); allowed: 2-256 "
            "lowercase letters, digits, '.', '_', '-' and '/' separators"
        )
    return name
