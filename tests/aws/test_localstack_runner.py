"""The host-mode LocalStack runner: port choice, the missing-3.13 reason, and a clean stop."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest

from platform_cli import localstack
from platform_cli.processes import port_is_free


def test_without_python313_the_reason_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no python3.13 on PATH
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.delenv("LOCALSTACK_PYTHON", raising=False)

    assert localstack.find_python313() is None
    with pytest.raises(localstack.LocalStackUnavailable, match=r"Python 3\.13 not found"):
        localstack.ensure_venv(tmp_path / "venv")
    with pytest.raises(localstack.LocalStackUnavailable, match=r"Python 3\.13 not found"):
        localstack.start(tmp_path / "venv")


def test_make_target_prints_the_reason_and_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setattr(localstack, "DEFAULT_VENV", tmp_path / "venv")
    caplog.set_level("INFO")

    assert localstack._main(["ensure-venv"]) == 0
    assert "Python 3.13 not found" in caplog.text


def test_port_4566_is_used_only_when_free() -> None:
    with contextlib.ExitStack() as stack:
        if port_is_free("127.0.0.1", localstack.DEFAULT_PORT):
            holder = stack.enter_context(socket.socket())
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # 4566 may be TIME_WAIT
            holder.bind(("127.0.0.1", localstack.DEFAULT_PORT))
            holder.listen()
        assert localstack.pick_port() != localstack.DEFAULT_PORT


def test_host_mode_environment_keeps_our_credentials_and_paths_out(tmp_path: Path) -> None:
    os.environ["AWS_SECRET_ACCESS_KEY_PROBE"] = "x"
    try:
        env = localstack.host_mode_environment(4566, tmp_path)
    finally:
        del os.environ["AWS_SECRET_ACCESS_KEY_PROBE"]
    assert not any(key.startswith("AWS_") for key in env)
    assert env["GATEWAY_LISTEN"] == "127.0.0.1:4566"
    assert env["GATEWAY_SERVER"] == "hypercorn"
    assert env["FILESYSTEM_ROOT"].startswith(str(tmp_path))


@pytest.mark.localstack
@pytest.mark.skipif(
    localstack.venv_python() is None,
    reason="no .localstack-venv (needs Python 3.13): run `make localstack-venv`",
)
def test_start_answers_health_and_stop_leaves_no_process() -> None:
    server = localstack.start()
    try:
        assert server.process is not None and server.process.running()
        services = localstack.health(server.endpoint)
        assert services is not None and "s3" in services
        pid, state_dir = server.pid, server.state_dir
        assert pid is not None
    finally:
        localstack.stop(server)

    assert not server.process.running()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole process group is gone
    assert state_dir is not None and not state_dir.exists()
    assert localstack.health(server.endpoint, timeout=0.5) is None


def test_the_runner_loads_every_service_the_localstack_stack_sends_to_it() -> None:
    from infra.program import LOCALSTACK_SERVICES

    aliases = {"cloudwatchlogs": "logs"}  # the provider's endpoint key vs LocalStack's name
    loaded = set(localstack.SERVICES.split(","))
    assert {aliases.get(s, s) for s in LOCALSTACK_SERVICES} <= loaded
