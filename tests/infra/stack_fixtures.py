"""The `prod` and `dev` fixtures that the component tests share.

Each component test module declares its component once per stack from that stack's default args;
this builds the two module-scoped fixtures from that one function:

    def _declare(stack: str, **overrides: Any) -> Declared:
        return run_program(lambda: Registry("registry", _args(stack, **overrides)), stack=stack)

    prod, dev = prod_and_dev(_declare)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from platform_cli.offline import Declared

REGION = "eu-west-1"
"""The region the component tests declare in (their ARNs name it)."""


def prod_and_dev(declare: Callable[[str], Declared]) -> tuple[Any, Any]:
    """Module-scoped fixtures named `prod` and `dev`: `declare(stack)` for each stack."""

    def for_stack(stack: str) -> Any:
        @pytest.fixture(scope="module", name=stack)
        def declared() -> Declared:
            return declare(stack)

        return declared

    return for_stack("prod"), for_stack("dev")
