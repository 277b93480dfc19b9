"""What the component tests (database, kafka, registry) share: declaring one component under the
recording mocks, its `prod` and `dev` fixtures, and the bad-input test.

    prod, dev = prod_and_dev(lambda stack: Registry("registry", _args(stack)))
    declared = declare_component(lambda: Registry("registry", _args("dev", ...)), "dev")
    test_invalid_args_fail = refusals_naming_the_field(
        lambda **overrides: Registry("registry", _args("prod", **overrides)), [...]
    )
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


Refusal = tuple[dict[str, Any], str]
"""(overrides of the component's args, fragment its ValueError must contain)."""


def refusals_naming_the_field(
    build: Callable[..., object], cases: list[Refusal]
) -> Callable[[dict[str, Any], str], None]:
    """A parametrized test (assign it to a `test_...` name) that `build(**overrides)` raises
    ValueError naming the field, outside a Pulumi program: validation runs before the component
    registers anything."""

    @pytest.mark.parametrize(("overrides", "fragment"), cases)
    def refused(overrides: dict[str, Any], fragment: str) -> None:
        with pytest.raises(ValueError) as info:
            build(**overrides)
        assert fragment in str(info.value)

    return refused
