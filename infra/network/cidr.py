"""Pure CIDR maths for the three subnet tiers (no Pulumi: tested with plain pytest + hypothesis).

Layout of a VPC with prefix /p (p in 16..20), for up to 3 AZs:

- private (workloads, EKS nodes and pods): the first three blocks of prefix /p+2, one per AZ.
  The VPC CNI gives every pod a VPC address, so this tier gets most of the space.
- the fourth /p+2 block is cut into eight /p+5 blocks: public (load balancers, NAT gateways)
  takes blocks 0..2, isolated (RDS, no internet route) takes blocks 4..6. Blocks 3 and 7 stay
  free for a later tier without renumbering anything.

The mapping depends only on (vpc_cidr, az_index, tier), so adding an AZ never moves a subnet.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

Tier = Literal["public", "private", "isolated"]
TIERS: tuple[Tier, ...] = ("public", "private", "isolated")
MAX_AZS = 3


@dataclass(frozen=True)
class SubnetPlan:
    """One subnet to declare: its tier, AZ index and CIDR."""

    tier: Tier
    az_index: int
    cidr: str


def subnet_cidr(vpc_cidr: str, tier: Tier, az_index: int) -> str:
    """The CIDR of one tier's subnet in one AZ."""
    if not 0 <= az_index < MAX_AZS:
        raise ValueError(f"az_index {az_index}; allowed: 0..{MAX_AZS - 1}")
    vpc = ipaddress.IPv4Network(vpc_cidr, strict=True)
    quarters = list(vpc.subnets(prefixlen_diff=2))
    if tier == "private":
        return str(quarters[az_index])
    eighths = list(quarters[3].subnets(prefixlen_diff=3))
    if tier == "public":
        return str(eighths[az_index])
    if tier == "isolated":
        return str(eighths[4 + az_index])
    raise ValueError(f"tier {tier!r}; allowed: {', '.join(TIERS)}")


def plan_subnets(vpc_cidr: str, az_count: int) -> list[SubnetPlan]:
    """Every subnet of the VPC, ordered by tier then AZ."""
    if not 1 <= az_count <= MAX_AZS:
        raise ValueError(f"az_count {az_count}; allowed: 1..{MAX_AZS}")
    return [
        SubnetPlan(tier=tier, az_index=az, cidr=subnet_cidr(vpc_cidr, tier, az))
        for tier in TIERS
        for az in range(az_count)
    ]


def usable_addresses(cidr: str) -> int:
    """Addresses AWS lets you use in a subnet (it reserves five in each)."""
    return ipaddress.IPv4Network(cidr).num_addresses - 5
