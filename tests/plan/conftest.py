"""Each stack's program runs once per test session under the mock monitor (about a second each)."""

from __future__ import annotations

import pytest

from platform_cli.offline import Declared
from tests.stacks import committed_stack


@pytest.fixture(scope="session")
def declared_stacks() -> dict[str, Declared]:
    return {}


@pytest.fixture
def declared(declared_stacks: dict[str, Declared]):
    """`declared(stack)` -> what the committed stack config declares (cached per session)."""

    def run(stack: str) -> Declared:
        if stack not in declared_stacks:
            declared_stacks[stack] = committed_stack(stack)
        return declared_stacks[stack]

    return run
