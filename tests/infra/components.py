"""What the component tests (database, kafka, registry) share: declaring one component under the
recording mocks, its `prod` and `dev` fixtures, and the bad-input check.

    prod, dev = prod_and_dev(lambda stack: Registry("registry", _args(stack)))
    declared = declare_component(lambda: Registry("registry", _args("dev", ...)), "dev")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from platform_cli.offline import Declared, run_program

REGION = "eu-west-1"
"""The region the component tests declare in (their ARNs name it)."""


def declare_component(build: Callable[[], object], stack: str) -> Declared:
    """What `build()` declares as a program of `stack`, recorded by the mocks."""
    return run_program(build, stack=stack, region=REGION)


def prod_and_dev(build: Callable[[str], object]) -> tuple[Any, Any]:
    """Module-scoped fixtures named `prod` and `dev`: what `build(stack)` declares in each."""

    def for_stack(stack: str) -> Any:
        @pytest.fixture(scope="module", name=stack)
        def declared() -> Declared:
            return declare_component(lambda: build(stack), stack)

        return declared

    return for_stack("prod"), for_stack("dev")


def assert_refused_naming_the_field(build: Callable[[], object], fragment: str) -> None:
    """`build()` outside a Pulumi program raises ValueError naming the field: validation runs
    before the component registers anything."""
    with pytest.raises(ValueError) as info:
        build()
    assert fragment in str(info.value)
