"""Typed stack config: committed stacks load, and every invalid case fails naming key and value."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.config import ConfigError, load_stack_config, read_stack_file
from infra.contracts import ENVIRONMENTS


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_committed_stacks_load(stack: str) -> None:
    from infra.config import load_stack_file

    cfg = load_stack_file(stack)
    assert cfg.stack == stack
    assert cfg.base_tags == {"project": "platform", "stack": stack, "managed-by": "pulumi"}


def _prod() -> dict[str, Any]:
    return copy.deepcopy(read_stack_file("prod"))


def _dev() -> dict[str, Any]:
    return copy.deepcopy(read_stack_file("dev"))


def _fails(stack: str, raw: dict[str, Any], *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_stack_config(stack, raw)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return message


# One wrong value in a committed stack's file ("section.key"), and what the error must say.
_ONE_BAD_VALUE = [
    pytest.param(
        "dev",
        "platform:network.vpcCidr",
        "10.20.0.1/16",
        ["platform:network.vpcCidr", "10.20.0.1/16", "allowed"],
        id="malformed-vpc-cidr-names-key-and-value",
    ),
    pytest.param(
        "dev",
        "platform:network.vpcCidr",
        "not-a-cidr",
        ["platform:network.vpcCidr", "not-a-cidr"],
        id="garbage-cidr",
    ),
    pytest.param(
        "dev",
        "platform:network.allowedCidrs",
        ["10.20.128.0/24"],
        ["overlaps vpcCidr", "10.20.128.0/24", "10.20.0.0/16"],
        id="overlapping-cidrs-rejected",
    ),
    pytest.param(
        "dev",
        "platform:network.vpcCidr",
        "8.8.0.0/16",
        ["platform:network.vpcCidr", "RFC 1918"],
        id="public-vpc-cidr-rejected",
    ),
    pytest.param(
        "prod",
        "platform:kafka.brokerCount",
        4,
        ["platform:kafka.brokerCount: 4 is not a multiple", "allowed: 3, 6, 9"],
        id="broker-count-not-multiple-of-azs",
    ),
    pytest.param(
        "prod",
        "platform:database.multiAz",
        False,
        ["platform:database.multiAz: false; prod must be true"],
        id="prod-multi-az-cannot-be-turned-off",
    ),
    pytest.param(
        "prod",
        "platform:database.backupRetentionDays",
        7,
        ["backupRetentionDays: 7; prod must keep 30"],
        id="prod-backups-thirty-days",
    ),
    pytest.param(
        "dev",
        "platform:database.backupRetentionDays",
        1,
        ["platform:database.backupRetentionDays", "allowed: 7 to 35"],
        id="backups-below-seven-days",
    ),
    # wrong case: must not silently default
    pytest.param(
        "dev",
        "platform:database.multiAZ",
        True,
        ["platform:database.multiAZ", "unknown key"],
        id="unknown-key-is-not-ignored",
    ),
    pytest.param(
        "dev",
        "platform:kafka.mode",
        "confluent",
        ["platform:kafka.mode", "'msk' or 'in-cluster'", "confluent"],
        id="enum-lists-allowed-values",
    ),
    pytest.param(
        "localstack",
        "platform:kafka.mode",
        "msk",
        ["platform:kafka.mode: 'msk'", "allowed: 'in-cluster'"],
        id="localstack-stack-cannot-declare-msk",
    ),
    pytest.param(
        "dev",
        "platform:cluster.publicAccessCidrs",
        ["0.0.0.0/0"],
        ["platform:cluster.publicAccessCidrs", "0.0.0.0/0"],
        id="public-endpoint-open-to-world-rejected",
    ),
    pytest.param(
        "localstack",
        "platform:registry.create",
        True,
        ["platform:registry.create: true", "allowed: false"],
        id="localstack-cannot-own-an-ecr-registry",
    ),
]


@pytest.mark.parametrize(("stack", "path", "value", "fragments"), _ONE_BAD_VALUE)
def test_one_bad_value_fails_naming_key_and_value(
    stack: str, path: str, value: object, fragments: list[str]
) -> None:
    section, key = path.rsplit(".", 1)
    raw = copy.deepcopy(read_stack_file(stack))
    raw[section][key] = value
    _fails(stack, raw, *fragments)


@pytest.mark.parametrize("az_count", [1, 4, 0])
def test_az_count_outside_range(az_count: int) -> None:
    raw = _dev()
    raw["platform:network"]["azCount"] = az_count
    _fails("dev", raw, "platform:network.azCount", "allowed: 2 or 3", f"got {az_count}")


def test_prod_must_use_three_azs() -> None:
    raw = _prod()
    raw["platform:network"]["azCount"] = 2
    raw["platform:kafka"]["brokerCount"] = 4
    _fails("prod", raw, "platform:network.azCount: 2; prod must use 3")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("platform:cluster", "version", "latest"),
        ("platform:cluster", "version", "1.20"),
        ("platform:kafka", "version", "3"),
        ("platform:database", "engineVersion", "16"),
        ("platform:database", "engineVersion", "9.6.1"),
    ],
)
def test_unknown_or_unpinned_versions(section: str, key: str, value: str) -> None:
    raw = _dev()
    raw[section][key] = value
    _fails("dev", raw, f"{section}.{key}", repr(value), "allowed:")


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("deletionProtection", "platform:protection.deletionProtection: false; prod must be true"),
        ("protectResources", "platform:protection.protectResources: false; prod must be true"),
        ("finalSnapshot", "platform:protection.finalSnapshot: false; prod must be true"),
    ],
)
def test_prod_protection_cannot_be_turned_off(key: str, fragment: str) -> None:
    raw = _prod()
    raw["platform:protection"][key] = False
    _fails("prod", raw, fragment)


def test_all_problems_reported_at_once() -> None:
    raw = _prod()
    raw["platform:database"]["multiAz"] = False
    raw["platform:protection"]["deletionProtection"] = False
    message = _fails("prod", raw, "multiAz", "deletionProtection")
    assert "2 problem(s)" in message


def test_unknown_stack_rejected() -> None:
    _fails("qa", _dev(), "stack: 'qa' is unknown", "allowed: localstack, dev, staging, prod")


def test_node_group_sizes_checked() -> None:
    raw = _dev()
    raw["platform:cluster"]["nodeGroups"][0]["desiredSize"] = 9
    _fails("dev", raw, "minSize <= desiredSize <= maxSize")


def test_reserved_tag_rejected() -> None:
    raw = _dev()
    raw["platform:tags"]["managed-by"] = "hand"
    _fails("dev", raw, "platform:tags.managed-by: reserved base tag")


def test_config_is_frozen() -> None:
    from infra.config import load_stack_file

    cfg = load_stack_file("dev")
    with pytest.raises(Exception, match="frozen"):
        cfg.network.az_count = 3  # type: ignore[misc]


# --- Flavour and tier ----------------------------------------------------------------------------


def test_modes_that_do_not_follow_the_flavour_fail_together() -> None:
    """dev with eks / in-cluster / in-cluster: both wrong modes are named, with the pairings."""
    raw = _dev()
    raw["platform:kafka"]["mode"] = "in-cluster"
    raw["platform:database"]["mode"] = "in-cluster"
    message = _fails(
        "dev",
        raw,
        "platform:kafka.mode: 'in-cluster' does not go with platform:flavour 'aws'; allowed: 'msk'",
        "platform:database.mode: 'in-cluster' does not go with platform:flavour 'aws'; "
        "allowed: 'rds'",
        "aws: eks/msk/rds, local: kubeconfig/in-cluster/in-cluster",
    )
    assert "2 problem(s)" in message


def test_local_flavour_refuses_eks() -> None:
    raw = copy.deepcopy(read_stack_file("localstack"))
    raw["platform:cluster"]["mode"] = "eks"
    raw["platform:cluster"]["nodeGroups"] = _dev()["platform:cluster"]["nodeGroups"]
    _fails("localstack", raw, "platform:cluster.mode: 'eks'", "allowed: 'kubeconfig'")


def test_flavour_is_required_and_enumerated() -> None:
    raw = _dev()
    del raw["platform:flavour"]
    _fails("dev", raw, "platform:flavour: Field required")
    raw["platform:flavour"] = "gcp"
    _fails("dev", raw, "platform:flavour", "'aws' or 'local'", "got 'gcp'")


def test_localstack_endpoint_only_with_the_local_flavour() -> None:
    raw = _dev()
    raw["platform:localstack"] = {"endpoint": "http://127.0.0.1:4566"}
    _fails("dev", raw, "platform:localstack: set with flavour 'aws'", "only with flavour 'local'")
    local = copy.deepcopy(read_stack_file("localstack"))
    del local["platform:localstack"]
    _fails("localstack", local, "platform:localstack: missing; flavour 'local' needs")


def test_tier_is_read_not_derived_from_the_stack_name() -> None:
    raw = _dev()
    raw["platform:tier"]["highAvailability"] = True
    raw["platform:tier"]["minApiReplicas"] = 3
    tier = load_stack_config("dev", raw).tier
    assert (tier.high_availability, tier.min_api_replicas) == (True, 3)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("minApiReplicas", 0, "platform:tier.minApiReplicas"),
        ("prometheus", {"retention": "two weeks", "storageGib": 5}, "tier.prometheus.retention"),
        ("prometheus", {"retention": "7d", "storageGib": 0}, "tier.prometheus.storageGib"),
        ("highAvailability", "maybe", "platform:tier.highAvailability"),
    ],
)
def test_bad_tier_values_name_the_field(key: str, value: object, fragment: str) -> None:
    raw = _dev()
    raw["platform:tier"][key] = value
    _fails("dev", raw, fragment)


@pytest.mark.parametrize(
    ("section", "key", "value", "fragment"),
    [
        ("platform:tier", "highAvailability", False, "tier.highAvailability: false; prod must"),
        ("platform:tier", "minApiReplicas", 1, "tier.minApiReplicas: 1; prod needs >= 2"),
        ("platform:protection", "keyDeletionWindowDays", 7, "keyDeletionWindowDays: 7; prod must"),
    ],
)
def test_prod_tier_and_key_window_cannot_be_lowered(
    section: str, key: str, value: object, fragment: str
) -> None:
    raw = _prod()
    raw[section][key] = value
    _fails("prod", raw, fragment)


def test_staging_is_highly_available_like_prod() -> None:
    from infra.config import load_stack_file

    staging, prod = load_stack_file("staging").tier, load_stack_file("prod").tier
    assert staging.high_availability and prod.high_availability
    assert staging.min_api_replicas >= 2


# --- Regions and zones ---------------------------------------------------------------------------


def test_unsupported_region_names_the_field_and_the_allowed_regions() -> None:
    raw = _dev()
    raw["aws:region"] = "us-west-1"
    _fails("dev", raw, "aws:region: 'us-west-1' is not supported; allowed: us-east-1, ")
    raw["aws:region"] = "moon-1"
    _fails("dev", raw, "aws:region: 'moon-1' is not supported", "eu-west-1")


def test_zones_come_from_the_region_list() -> None:
    raw = _prod()
    raw["aws:region"] = "ap-northeast-1"  # no "b" zone for current accounts
    cfg = load_stack_config("prod", raw)
    assert cfg.availability_zones == ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]
    assert load_stack_config("dev", _dev()).availability_zones == ["eu-west-1a", "eu-west-1b"]


def test_az_count_cannot_exceed_the_regions_zones(monkeypatch: pytest.MonkeyPatch) -> None:
    import infra.config

    monkeypatch.setitem(infra.config.SUPPORTED_REGIONS, "eu-south-9", ("a", "b"))
    raw = _prod()
    raw["aws:region"] = "eu-south-9"
    _fails("prod", raw, "platform:network.azCount: 3; region eu-south-9 has the zones a, b")
