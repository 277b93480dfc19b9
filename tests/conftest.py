"""Fixtures shared by several test tiers.

`localstack_endpoint`: real LocalStack for the whole session, started once and shared by every
tier that runs its boto3 tests against it as well as against moto (tests/aws, tests/apps).
`LOCALSTACK_ENDPOINT` when set and healthy; else host-mode LocalStack from `.localstack-venv`
(`make localstack-venv`, Python 3.13); else the requesting test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from platform_cli.localstack import LocalStackUnavailable, localstack_server


@pytest.fixture(scope="session")
def localstack_endpoint() -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(localstack_server())
        except LocalStackUnavailable as exc:
            pytest.skip(f"LocalStack leg skipped: {exc}")
        yield server.endpoint
