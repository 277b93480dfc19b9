"""The platform program: composes the components for one typed stack config."""

from __future__ import annotations

import pulumi

from infra.config import PlatformConfig


def build(cfg: PlatformConfig) -> dict[str, pulumi.Output]:
    """Declare every resource of one environment and export what later layers need."""
    import pulumi_aws as aws

    key = aws.kms.Key("probe", description="probe", enable_key_rotation=True)
    pulumi.export("probe", key.arn)
    return {}
