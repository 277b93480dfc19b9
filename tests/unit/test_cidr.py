"""Subnet CIDR maths: exact layout for known inputs, and properties over every valid VPC."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.network.cidr import plan_subnets, subnet_cidr, usable_addresses


def test_known_layout_for_a_slash_16() -> None:
    plan = {(p.tier, p.az_index): p.cidr for p in plan_subnets("10.40.0.0/16", 3)}
    assert plan[("private", 0)] == "10.40.0.0/18"
    assert plan[("private", 2)] == "10.40.128.0/18"
    assert plan[("public", 0)] == "10.40.192.0/21"
    assert plan[("public", 2)] == "10.40.208.0/21"
    assert plan[("isolated", 0)] == "10.40.224.0/21"
    assert plan[("isolated", 2)] == "10.40.240.0/21"


def test_private_tier_is_largest() -> None:
    assert usable_addresses(subnet_cidr("10.0.0.0/16", "private", 0)) == 16379
    assert usable_addresses(subnet_cidr("10.0.0.0/16", "public", 0)) == 2043


def test_adding_an_az_never_moves_a_subnet() -> None:
    two = {(p.tier, p.az_index): p.cidr for p in plan_subnets("10.20.0.0/16", 2)}
    three = {(p.tier, p.az_index): p.cidr for p in plan_subnets("10.20.0.0/16", 3)}
    assert all(three[key] == cidr for key, cidr in two.items())


@pytest.mark.parametrize("bad", [0, 4, -1])
def test_az_count_bounds(bad: int) -> None:
    with pytest.raises(ValueError, match="az_count"):
        plan_subnets("10.0.0.0/16", bad)


def test_host_bits_rejected() -> None:
    with pytest.raises(ValueError):
        plan_subnets("10.0.0.1/16", 2)


vpcs = st.builds(
    lambda a, b, prefix: str(
        ipaddress.IPv4Network(f"10.{a}.{b}.0/{prefix}", strict=False).supernet(new_prefix=prefix)
    ),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(16, 20),
)


@given(vpc=vpcs, az_count=st.integers(1, 3))
def test_subnets_inside_vpc_and_disjoint(vpc: str, az_count: int) -> None:
    network = ipaddress.IPv4Network(vpc)
    plan = plan_subnets(vpc, az_count)
    assert len(plan) == 3 * az_count
    subnets = [ipaddress.IPv4Network(p.cidr) for p in plan]
    assert all(s.subnet_of(network) for s in subnets)
    for left, right in itertools.combinations(subnets, 2):
        assert not left.overlaps(right)


@given(vpc=vpcs)
def test_every_subnet_fits_an_eks_minimum(vpc: str) -> None:
    # EKS needs at least 16 usable addresses per control-plane subnet; data tiers hold RDS/MSK.
    for p in plan_subnets(vpc, 3):
        assert usable_addresses(p.cidr) >= 16 * (4 if p.tier == "private" else 1) - 5
