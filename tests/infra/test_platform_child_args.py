"""`child_args`: the layer builds each child's Args from same-named fields of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from infra.platform.child_args import child_args


@dataclass(frozen=True)
class _Child:
    region: str
    replicas: int
    zone: str = "default-zone"
    derived: str = field(default="fixed", init=False)


def test_explicit_values_win_over_every_source() -> None:
    got = child_args(_Child, SimpleNamespace(region="eu-west-1", replicas=1), replicas=3)
    assert (got.region, got.replicas) == ("eu-west-1", 3)


def test_the_first_source_with_the_name_wins_and_defaults_fill_the_rest() -> None:
    first = SimpleNamespace(region="eu-west-1")
    second = SimpleNamespace(region="us-east-1", replicas=2)
    got = child_args(_Child, first, second)
    assert (got.region, got.replicas, got.zone) == ("eu-west-1", 2, "default-zone")


def test_fields_the_child_computes_itself_are_never_taken_from_a_source() -> None:
    got = child_args(_Child, SimpleNamespace(region="r", replicas=1, derived="from-layer"))
    assert got.derived == "fixed"


def test_a_required_field_no_one_supplies_names_it() -> None:
    with pytest.raises(TypeError, match="replicas"):
        child_args(_Child, SimpleNamespace(region="eu-west-1"))
