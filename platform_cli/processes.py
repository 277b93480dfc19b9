"""The process kit: spawn, wait until ready, terminate. One copy, used by the embedded parts,
`platform local`, real LocalStack, the bench and the tests.

- Processes are mirakuru executors: each runs in its own session (a Ctrl-C in the terminal
  reaches only us), is waited for until it answers (TCP or HTTP), and is stopped as a process
  group, then every process that inherited its marker variable, then SIGKILL for what is left.
- Waits and retries are tenacity: `wait_until` (a condition, with a deadline and a reason) and
  `retrying` (an operation that fails until a server is up).

Two adaptations of mirakuru, both deliberate:
- the child gets exactly the environment it is given (mirakuru merges `os.environ` in): the apps
  must not inherit the caller's AWS_/KAFKA_/DB_ variables, only the facts we hand them;
- mirakuru's exit hook is removed: it SIGKILLs every process whose marker merely *contains* our
  pid as a substring, which on a shared machine can be another user's process. Everything
  started here is stopped explicitly (context managers and `close()`), so the hook adds nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

import mirakuru
import mirakuru.base
from mirakuru import Executor, HTTPExecutor, SimpleExecutor, TCPExecutor
from mirakuru.exceptions import ExecutorError, ProcessFinishedWithError
from tenacity import (
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    wait_fixed,
)

atexit.unregister(mirakuru.base.cleanup_subprocesses)

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0


class NotReady(RuntimeError):
    """A condition did not hold, or a process did not answer, before its deadline."""


# --- waits and retries (tenacity) -----------------------------------------------------------


def poll_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Call `predicate` every `interval` s until it is true (True) or `timeout` passed (False).
    An exception from `predicate` is not retried: it is raised as it is."""
    retryer = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda done: not done),
        retry_error_callback=lambda _state: False,
    )
    return bool(retryer(lambda: bool(predicate())))


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
) -> None:
    """`poll_until`, raising NotReady("<what> after <timeout>s") when it never held."""
    if not poll_until(predicate, timeout, interval):
        raise NotReady(f"{what} after {timeout:.0f}s")


def retrying(
    operation: Callable[[], T],
    *,
    timeout: float,
    on: tuple[type[BaseException], ...],
    interval: float = 0.2,
) -> T:
    """Run `operation` until it returns, retrying on the `on` errors for up to `timeout` s;
    the last error is raised as it is when time runs out."""
    retryer = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        retry=retry_if_exception_type(on),
        reraise=True,
    )
    return retryer(operation)


def last_line_of(
    command: list[str],
    *,
    what: str,
    error: type[Exception],
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run `command` to its end and return the last line of its stdout: the answer of a command
    that may print progress first. A non-zero exit raises `error`("<what> failed", with the end
    of its stderr)."""
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise error(f"{what} failed:\n{result.stderr[-1500:]}")
    return result.stdout.strip().splitlines()[-1].strip()


# --- ports ------------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free TCP port on `host` (racy by nature, but fine on loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind host:port now (a just-closed listener's TIME_WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def accepts_connections(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_for_port(host: str, port: int, timeout: float = READY_TIMEOUT_S) -> None:
    """Block until something accepts TCP connections on host:port, or raise NotReady."""
    wait_until(
        lambda: accepts_connections(host, port),
        timeout=timeout,
        interval=0.05,
        what=f"nothing listening on {host}:{port}",
    )


# --- processes (mirakuru) ---------------------------------------------------------------------


class _KitExecutor(SimpleExecutor):
    """What every executor here adds to mirakuru's: the exact environment, a log file opened
    per start, a stop grace separate from the start timeout, spawning without waiting (to start
    several at once), and a terminate that never raises and leaves no process group behind."""

    def __init__(
        self,
        command: list[str] | tuple[str, ...],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
        log: Path | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
        stop_grace_s: float = STOP_GRACE_S,
        **kwargs: Any,
    ) -> None:
        self.log_path = log
        self.started_pid: int | None = None
        """The pid of the last start, kept after the process is gone (for reports)."""
        self.returncode: int | None = None
        """The exit code of the last run, once it has ended."""
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        super().__init__(
            list(command),
            envvars=dict(env),
            cwd=str(cwd) if cwd else None,
            timeout=ready_timeout_s,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            **kwargs,
        )

    @property
    def envvars(self) -> dict[str, str]:
        return {**self._envvars, mirakuru.base.ENV_UUID: self._uuid}

    def spawn(self) -> Self:
        """Start the process without waiting for anything."""
        handle = self.log_path.open("ab") if self.log_path else None
        self._stdout = handle or subprocess.DEVNULL
        try:
            SimpleExecutor.start(self)
            self.started_pid = self.process.pid if self.process is not None else None
            self.returncode = None
        finally:
            if handle is not None:
                handle.close()  # the child has its own descriptor
        return self

    def terminate(self) -> int | None:
        """SIGTERM the group, wait up to `stop_grace_s`, then SIGKILL what is left of it.
        Returns the exit code (None when nothing had been started)."""
        popen = self.process
        if popen is None:
            return None
        self._timeout = self.stop_grace_s  # mirakuru has one timeout for start and for stop
        try:
            with contextlib.suppress(ProcessFinishedWithError):
                self.stop()
        finally:
            self._timeout = self.ready_timeout_s
        # Children may outlive the leader; the group id is still the leader's pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        return self.returncode

    def _clear_process(self) -> None:
        if self.process is not None:
            self.returncode = self.process.poll()
        super()._clear_process()

    def poll(self) -> int | None:
        """The exit code once the last start has ended, None while it runs (or never ran)."""
        return self.process.poll() if self.process is not None else self.returncode

    def exited(self) -> bool:
        """Whether the process was started and has ended (or been stopped) since."""
        return self.started_pid is not None and self.poll() is not None


class Process(_KitExecutor):
    """A process with no readiness check: a one-shot command, or a server checked elsewhere."""

    def run(self, timeout: float) -> int:
        """Start, wait for the exit (terminated past `timeout`), return the exit code."""
        self.spawn()
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        """Wait for the exit; past `timeout` the process is terminated. Returns the exit code."""
        popen = self.process
        assert popen is not None, "spawn() first"
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout)
        self.terminate()  # past the timeout; else it reaps what the command left in its group
        return int(popen.returncode)


def spawn_python(
    args: list[str], *, env: Mapping[str, str], log: Path, stop_grace_s: float = STOP_GRACE_S
) -> Process:
    """`python <args>` from the repository root, spawned with this process's environment plus
    `env`: how the bench and the tests run an app as its own OS process (it needs the caller's
    PATH and virtualenv; `platform local` and the rehearsal hand over only the facts instead)."""
    return Process(
        [sys.executable, *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        log=log,
        stop_grace_s=stop_grace_s,
    ).spawn()


class OwnsProcess:
    """A wrapper around one kit process, `process` (None until it is started)."""

    process: Process | None

    @property
    def pid(self) -> int:
        """The pid of its last start (kept once it has ended)."""
        assert self.process is not None and self.process.started_pid is not None, "not started"
        return self.process.started_pid


class _Server(_KitExecutor, Executor):
    def wait_ready(self) -> Self:
        """Wait until it answers; if it exits or never answers, stop it and raise NotReady."""
        self._timeout = self.ready_timeout_s
        self._set_timeout()
        try:
            self.wait_for(self.check_subprocess)
        except ExecutorError as exc:
            self.terminate()
            raise NotReady(str(exc)) from exc
        return self

    def start(self) -> Self:
        """Spawn and wait until ready (refusing a port something else already answers on)."""
        if self.pre_start_check():
            raise NotReady(f"{self.command_parts[0]}: something already answers there")
        return self.spawn().wait_ready()


class TcpProcess(_Server, TCPExecutor):
    """A server that is ready once it accepts TCP connections on host:port."""

    def __init__(
        self, command: list[str] | tuple[str, ...], *, host: str, port: int, **kwargs: Any
    ) -> None:
        super().__init__(command, host=host, port=port, **kwargs)


class HttpProcess(_Server, HTTPExecutor):
    """A server that is ready once `GET url` answers 2xx."""

    def __init__(self, command: list[str] | tuple[str, ...], *, url: str, **kwargs: Any) -> None:
        # GET: FastAPI answers HEAD (mirakuru's default) with 405.
        super().__init__(command, url=url, method="GET", request_timeout=2.0, **kwargs)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether `GET url` answers 2xx now."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False
