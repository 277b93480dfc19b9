"""Registry (ECR) under the recording mocks, plus its pure lifecycle-policy functions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.contracts import APP_NAMES
from infra.registry.ecr import Registry, RegistryArgs
from infra.registry.lifecycle import lifecycle_policy, lifecycle_policy_json, repository_name
from platform_cli.offline import Declared
from tests.infra.components import (
    declare_component,
    prod_and_dev,
    refusals_naming_the_field,
)
from tests.infra.taggable import assert_tagged

KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/ecr-key"


def _args(stack: str, **overrides: Any) -> RegistryArgs:
    fields: dict[str, Any] = {
        "kms_key_arn": KEY_ARN,
        "repository_prefix": f"plat-{stack}",
        "protect": stack == "prod",
        "tags": {"project": "platform", "stack": stack, "managed-by": "pulumi"},
        **overrides,
    }
    return RegistryArgs(**fields)


prod, dev = prod_and_dev(lambda stack: Registry("registry", _args(stack)))


# --- Pure functions ------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=3650), st.integers(min_value=1, max_value=1000))
def test_lifecycle_policy_is_valid_json_with_ordered_expire_rules(days: int, keep: int) -> None:
    document = json.loads(lifecycle_policy_json(days, keep))
    assert document == lifecycle_policy(days, keep)
    rules = document["rules"]
    assert [r["rulePriority"] for r in rules] == [1, 2]
    assert all(r["action"] == {"type": "expire"} for r in rules)
    untagged, tagged = (r["selection"] for r in rules)
    assert untagged == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": days,
    }
    assert tagged == {
        "tagStatus": "tagged",
        "tagPatternList": ["*"],
        "countType": "imageCountMoreThan",
        "countNumber": keep,
    }


@pytest.mark.parametrize(
    ("days", "keep", "fragment"),
    [(0, 30, "untagged_expiry_days: 0"), (7, 0, "keep_tagged_images: 0")],
)
def test_lifecycle_policy_refuses_nonsense(days: int, keep: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        lifecycle_policy(days, keep)


def test_repository_names() -> None:
    assert repository_name("plat-dev", "events-api") == "plat-dev/events-api"
    assert repository_name("", "audit") == "audit"
    with pytest.raises(ValueError, match="'Plat/Events'"):
        repository_name("Plat", "Events")


# --- The component -------------------------------------------------------------------------------


def test_one_immutable_scanned_kms_encrypted_repository_per_app(prod: Declared) -> None:
    repositories = prod.of_type("aws:ecr/repository:Repository")
    # Registration is asynchronous, so compare as sets of names, not sequences.
    assert sorted(r.inputs["name"] for r in repositories) == sorted(
        f"plat-prod/{a}" for a in APP_NAMES
    )
    for repository in repositories:
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repository.inputs["encryptionConfigurations"] == [
            {"encryptionType": "KMS", "kmsKey": KEY_ARN}
        ]


def test_each_repository_has_the_lifecycle_policy(prod: Declared) -> None:
    policies = prod.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    # Policies wait for their repository's name, so their registration order varies.
    assert sorted(p.inputs["repository"] for p in policies) == sorted(
        f"plat-prod/{a}" for a in APP_NAMES
    )
    for policy in policies:
        assert json.loads(policy.inputs["policy"]) == lifecycle_policy()
        repository = prod.by_name(policy.name.removesuffix("-lifecycle"))
        assert prod.depends_on(policy, repository)


def test_protected_in_prod_force_deletable_in_dev(prod: Declared, dev: Declared) -> None:
    for repository in prod.of_type("aws:ecr/repository:Repository"):
        assert repository.protect is True
        assert repository.inputs["forceDelete"] is False
    for repository in dev.of_type("aws:ecr/repository:Repository"):
        assert repository.protect is False
        assert repository.inputs["forceDelete"] is True


def test_outputs_map_every_app_to_its_repository(prod: Declared) -> None:
    outputs = prod.component_outputs[prod.one("platform:registry:Registry").urn]
    assert set(outputs) == {"repository_urls", "repository_arns"}
    assert sorted(outputs["repository_urls"]) == sorted(APP_NAMES)
    assert sorted(outputs["repository_arns"]) == sorted(APP_NAMES)
    for app, url in outputs["repository_urls"].items():
        assert ".dkr.ecr.eu-west-1.amazonaws.com/" in url
        assert url.endswith(app)


def test_every_repository_is_tagged_and_parented(dev: Declared) -> None:
    assert assert_tagged(dev) == len(APP_NAMES)
    component = dev.one("platform:registry:Registry")
    for resource in dev.resources:
        if resource.custom:
            assert resource.parent == component.urn
            assert resource.name.startswith("registry-")
    for repository in dev.of_type("aws:ecr/repository:Repository"):
        assert repository.inputs["tags"]["Name"] == repository.inputs["name"]


def test_custom_app_list_and_no_prefix() -> None:
    args = _args("dev", app_names=("svc",), repository_prefix="")
    declared = declare_component(lambda: Registry("registry", args), "dev")
    assert [r.inputs["name"] for r in declared.of_type("aws:ecr/repository:Repository")] == ["svc"]


test_invalid_args_fail_before_any_resource_naming_the_field = refusals_naming_the_field(
    lambda **overrides: Registry("registry", _args("prod", **overrides)),
    [
        ({"app_names": ()}, "app_names: empty"),
        ({"app_names": ("audit", "audit")}, "app_names: ['audit'] appear more than once"),
        ({"app_names": ("Bad Name",)}, "'plat-prod/Bad Name'"),
        ({"keep_tagged_images": 0}, "keep_tagged_images: 0"),
        ({"untagged_expiry_days": 0}, "untagged_expiry_days: 0"),
    ],
)
