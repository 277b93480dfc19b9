"""Fixtures shared by several test tiers, and the slow tier.

The slow tier (`-m slow`; `make unit` leaves it out, `make test` runs everything): the tiers that
start real servers, processes, containers or a browser (`REAL_PARTS_TIERS`), and single tests
elsewhere marked `@pytest.mark.slow` because they run a subprocess or take seconds.

`use_aws_emulator`: boto3 pointed at an emulator, with test credentials.

`serving`: an HTTP handler served from a thread on loopback, for the stand-ins and recorders the
tests point the code under test at (webhook targets, an OTLP receiver, Argo CD's API).

`localstack_endpoint`: real LocalStack for the whole session, started once and shared by every
tier that runs its boto3 tests against it as well as against moto (tests/aws, tests/apps).
`LOCALSTACK_ENDPOINT` when set and healthy; else host-mode LocalStack from `.localstack-venv`
(`make localstack-venv`, Python 3.13); else the requesting test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from platform_cli.localstack import LocalStackUnavailable, localstack_server
from tests.stacks import fix_run_id, remove_shared_stacks

pytest_plugins = ("tests.hard_stop",)
"""A hang that pytest-timeout cannot end ends the run, with every thread's stack printed."""

TESTS_ROOT = Path(__file__).resolve().parent
REAL_PARTS_TIERS = ("apps", "aws", "images", "web")
"""Real broker, database and AWS emulators; real images and containers; a real browser."""


def pytest_configure(config: pytest.Config) -> None:
    fix_run_id(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    remove_shared_stacks(config)


def _in_real_parts_tier(path: Path) -> bool:
    resolved = path.resolve()
    if not resolved.is_relative_to(TESTS_ROOT):
        return False
    parts = resolved.relative_to(TESTS_ROOT).parts
    return bool(parts) and parts[0] in REAL_PARTS_TIERS


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # `make unit` (-m "not slow") would import these tiers' modules (moto, schemathesis,
    # playwright...) in every worker only to deselect all of them: seconds of CPU per worker.
    if config.getoption("markexpr") == "not slow" and _in_real_parts_tier(collection_path):
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _in_real_parts_tier(item.path):
            item.add_marker(pytest.mark.slow)


def use_aws_emulator(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, region: str = "us-east-1"
) -> dict[str, str]:
    """Point boto3 (in this process and in subprocesses) at an AWS emulator for the test. The
    emulators accept any credentials; these, and no AWS_PROFILE, keep boto3 from real ones."""
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return env


@contextlib.contextmanager
def serving(
    handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0
) -> Iterator[ThreadingHTTPServer]:
    """`handler` answering on host:port (0: a free port; read it from `server_address`) from a
    daemon thread, one thread per request; shut down and closed on exit."""
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="session")
def localstack_endpoint() -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(localstack_server())
        except LocalStackUnavailable as exc:
            pytest.skip(f"LocalStack leg skipped: {exc}")
        yield server.endpoint
