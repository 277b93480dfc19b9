"""The process kit (platform_cli/processes.py) with real processes: ready when it answers, the
exact environment it is given, a stop that leaves no member of its process group, and waits
and retries that give up with a reason."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from platform_cli.processes import (
    HttpProcess,
    NotReady,
    Process,
    TcpProcess,
    free_port,
    poll_until,
    retrying,
    wait_until,
)

PY = sys.executable


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_http_server_is_ready_once_it_answers_and_stops_with_its_children(
    tmp_path: Path,
) -> None:
    port = free_port()
    # The server forks a child that ignores SIGTERM: only the group's SIGKILL ends it.
    script = (
        "import http.server, os, signal, time\n"
        "if os.fork() == 0:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler)"
        ".serve_forever()\n"
    )
    server = HttpProcess(
        [PY, "-c", script],
        url=f"http://127.0.0.1:{port}/",
        env={"PATH": os.environ["PATH"]},
        cwd=tmp_path,
        log=tmp_path / "server.log",
        stop_grace_s=2.0,
    )
    server.start()
    pid = server.started_pid
    assert pid is not None and server.running()
    server.terminate()
    assert not server.running() and server.poll() == -signal.SIGTERM
    assert poll_until(lambda: not _group_alive(pid), timeout=5), "a child outlived the stop"


def test_the_child_gets_exactly_the_environment_it_is_given(tmp_path: Path) -> None:
    os.environ["KIT_PARENT_ONLY"] = "leak"
    try:
        probe = Process(
            [PY, "-c", "import os; print(sorted(k for k in os.environ if k.startswith('KIT_')))"],
            env={"KIT_GIVEN": "1"},
            log=tmp_path / "env.log",
        )
        assert probe.run(timeout=30) == 0
    finally:
        del os.environ["KIT_PARENT_ONLY"]
    assert (tmp_path / "env.log").read_text().strip() == "['KIT_GIVEN']"


def test_a_server_that_exits_is_not_ready_and_says_so() -> None:
    crashing = TcpProcess(
        [PY, "-c", "raise SystemExit(3)"], host="127.0.0.1", port=free_port(), env={}
    )
    with pytest.raises(NotReady, match="exited with a non-zero code: 3"):
        crashing.start()
    assert not crashing.running()


def test_a_server_that_never_answers_times_out_and_is_stopped() -> None:
    silent = TcpProcess(
        [PY, "-c", "import time; time.sleep(60)"],
        host="127.0.0.1",
        port=free_port(),
        env={},
        ready_timeout_s=0.5,
    )
    started = time.monotonic()
    with pytest.raises(NotReady):
        silent.start()
    assert time.monotonic() - started < 10
    assert not silent.running()


def test_a_one_shot_past_its_timeout_is_terminated() -> None:
    sleeper = Process([PY, "-c", "import time; time.sleep(60)"], env={}, stop_grace_s=1.0)
    assert sleeper.run(timeout=0.3) == -signal.SIGTERM


def test_waits_give_up_with_the_reason() -> None:
    assert poll_until(lambda: True, timeout=1)
    assert not poll_until(lambda: False, timeout=0.2, interval=0.05)
    with pytest.raises(NotReady, match="the flag never rose after 0s"):
        wait_until(lambda: False, timeout=0.2, interval=0.05, what="the flag never rose")


def test_retrying_retries_only_the_named_errors_and_raises_the_last() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not yet")
        return "up"

    assert retrying(flaky, timeout=5, on=(OSError,), interval=0.01) == "up"
    assert len(calls) == 3

    def never() -> None:
        raise ConnectionRefusedError("still down")

    with pytest.raises(ConnectionRefusedError, match="still down"):
        retrying(never, timeout=0.2, on=(OSError,), interval=0.05)

    def wrong() -> None:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    calls.clear()
    with pytest.raises(ValueError):
        retrying(wrong, timeout=5, on=(OSError,), interval=0.01)
    assert len(calls) == 1
