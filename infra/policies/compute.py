"""Instances reach the metadata service only with IMDSv2 session tokens."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import rule
from infra.policies.encryption import LAUNCH_TEMPLATE
from infra.policies.model import RuleContext
from infra.policies.values import get

EC2_INSTANCE = "aws:ec2/instance:Instance"


@rule(
    "imdsv2-required",
    "Launch templates and instances require IMDSv2 (metadataOptions.httpTokens='required').",
    types=[LAUNCH_TEMPLATE, EC2_INSTANCE],
)
def imdsv2_required(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if get(inputs, "metadataOptions", "httpEndpoint") == "disabled":
        return  # no metadata service at all is stricter than IMDSv2
    tokens = get(inputs, "metadataOptions", "httpTokens")
    if tokens != "required":
        yield (
            f"metadataOptions.httpTokens is {tokens or 'not set'} (IMDSv1 allowed, so any SSRF "
            "can read node credentials): set it to 'required'"
        )
