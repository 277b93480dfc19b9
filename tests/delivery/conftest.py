"""AWS emulator for the delivery gates: moto's server (ECR, Secrets Manager). LocalStack's free
edition refuses ECR, so these tests run on moto only."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from platform_cli.embedded import free_port, wait_for_port
from tests.conftest import use_aws_emulator


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_for_port("127.0.0.1", port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 (in-process and in subprocesses) at moto with test credentials."""
    use_aws_emulator(monkeypatch, moto_endpoint, "eu-west-1")
    return moto_endpoint


# The real events-api for the rollout's smoke test: Tansu, PostgreSQL and a migrated database,
# the same fixtures the app tests use.
from tests.apps.conftest import (  # noqa: E402, F401
    database_url,
    events_api_env,
    kafka,
    postgres,
    unique_topics,
)
