"""Every stack runs the whole program under mocks; prod/dev differences are asserted."""

from __future__ import annotations

import json
from functools import cache

import pytest

from infra.config import load_stack_file, read_stack_file
from infra.contracts import ENVIRONMENTS, REQUIRED_TAG_KEYS
from infra.offline import Declared, run_program, run_stack
from infra.program import LOCALSTACK_SERVICES


@cache
def declared(stack: str) -> Declared:
    return run_stack(load_stack_file(stack))


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_stack_evaluates_and_exports(stack: str) -> None:
    result = declared(stack)
    assert len(result.resources) > 40
    for key in ("vpcId", "privateSubnetIds", "isolatedSubnetIds", "auditArchiveBucket"):
        assert result.outputs[key], key


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_every_aws_resource_uses_the_explicit_provider(stack: str) -> None:
    result = declared(stack)
    provider = result.one("pulumi:providers:aws")
    for resource in result.resources:
        if resource.custom and resource.type.startswith("aws:"):
            assert resource.provider and resource.provider.startswith(provider.urn), resource.name


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_required_tags_everywhere(stack: str) -> None:
    for resource in declared(stack).resources:
        if resource.custom and "tags" in resource.inputs:
            tags = resource.inputs["tags"]
            assert all(k in tags for k in REQUIRED_TAG_KEYS), resource.name
            assert tags["stack"] == stack


def test_prod_and_dev_differ_where_they_should() -> None:
    prod, dev = declared("prod"), declared("dev")
    assert len(prod.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len(dev.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len(prod.of_type("aws:ec2/subnet:Subnet")) == 9
    assert len(dev.of_type("aws:ec2/subnet:Subnet")) == 6
    assert all(k.protect for k in prod.of_type("aws:kms/key:Key"))
    assert not any(k.protect for k in dev.of_type("aws:kms/key:Key"))
    assert prod.one("aws:s3/bucket:Bucket").protect is True
    assert dev.one("aws:s3/bucket:Bucket").inputs["forceDestroy"] is True
    assert all(k.inputs["deletionWindowInDays"] == 30 for k in prod.of_type("aws:kms/key:Key"))


def test_localstack_provider_points_at_localstack() -> None:
    result = declared("localstack")
    provider = result.one("pulumi:providers:aws").inputs
    endpoint = read_stack_file("localstack")["platform:localstack"]["endpoint"]
    endpoints = (
        json.loads(provider["endpoints"])
        if isinstance(provider["endpoints"], str)
        else provider["endpoints"]
    )
    assert endpoints[0] == dict.fromkeys(LOCALSTACK_SERVICES, endpoint)
    for flag in (
        "skipCredentialsValidation",
        "skipMetadataApiCheck",
        "skipRequestingAccountId",
        "s3UsePathStyle",
    ):
        assert provider[flag] in (True, "true"), flag


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_cloud_stacks_use_the_default_aws_endpoints(stack: str) -> None:
    provider = declared(stack).one("pulumi:providers:aws").inputs
    assert "endpoints" not in provider
    assert provider["region"] == "eu-west-1"


def test_localstack_declares_only_what_its_free_edition_emulates() -> None:
    emulated = {"ec2", "kms", "s3", "iam", "cloudwatch", "secretsmanager", "sts", "logs"}
    for resource in declared("localstack").resources:
        if resource.custom and resource.type.startswith("aws:"):
            service = resource.type.split(":")[1].split("/")[0]
            assert service in emulated, f"{resource.type} is not emulated by LocalStack"


def test_load_from_pulumi_reads_the_same_config() -> None:
    """The `pulumi up` path (pulumi.Config) yields the same typed config as the stack file."""
    from infra.config import load_from_pulumi

    raw = read_stack_file("staging")
    config = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in raw.items()}
    seen = []
    run_program(
        lambda: seen.append(load_from_pulumi()), stack="staging", region="eu-west-1", config=config
    )
    assert seen == [load_stack_file("staging")]
