"""Real LocalStack without Docker: its last PyPI release in host mode, from a Python 3.13 venv.

`localstack-core` 2026.3.0 needs Python 3.13 and a set of pins (see
`localstack/constraints-localstack-2026.3.0.txt`) that clash with our own venv, so it lives in its
own `.localstack-venv`, built once (about 100 s) and marked by a stamp file.

`localstack_server()` starts it on 4566 when that port is free (else on a free loopback port),
waits for `/_localstack/health`, and on exit stops its whole process group and deletes its
temporary state, so nothing survives the caller (the process kit, `platform_cli.processes`).

Command line (used by the Makefile):
    python -m platform_cli.localstack ensure-venv   # build the venv, or say why not; exit 0
    python -m platform_cli.localstack run           # start, print the endpoint, wait for Ctrl-C
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from platform_cli.processes import HttpProcess, NotReady, free_port, port_is_free

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCALSTACK_VERSION = "2026.3.0"
CONSTRAINTS = REPO_ROOT / "localstack" / f"constraints-localstack-{LOCALSTACK_VERSION}.txt"
DEFAULT_VENV = REPO_ROOT / ".localstack-venv"
DEFAULT_PORT = 4566
READY_TIMEOUT_S = 120.0
"""Cold start is ~3 s alone, but several test runs may share two cores."""

SERVICES = "s3,kms,sts,iam,secretsmanager,ec2,logs,cloudwatch,sqs,sns"
"""What we use from the free edition; loading fewer services starts faster."""


class LocalStackUnavailable(RuntimeError):
    """LocalStack cannot run here; the message says why (used as a pytest skip reason)."""


# --- Finding Python 3.13 and building the venv ---------------------------------------------------


def _runs(python: str) -> bool:
    try:
        result = subprocess.run(
            [python, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def find_python313() -> str | None:
    """A working Python 3.13: `$LOCALSTACK_PYTHON`, `python3.13` on PATH, or a pyenv install.

    A pyenv shim named `python3.13` exists even when 3.13 is not the selected version and then
    fails, so every candidate is actually run.
    """
    candidates = [os.environ.get("LOCALSTACK_PYTHON", ""), shutil.which("python3.13") or ""]
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.13*/bin/python3.13"), reverse=True)
    for candidate in filter(None, candidates):
        if _runs(candidate):
            return candidate
    return None


def _stamp(venv: Path) -> Path:
    digest = hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()[:12]
    return venv / f".installed-{LOCALSTACK_VERSION}-{digest}"


def venv_python(venv: Path | None = None) -> Path | None:
    """The venv's interpreter when the venv is completely installed, else None."""
    venv = venv or DEFAULT_VENV
    python = venv / "bin" / "python"
    return python if _stamp(venv).exists() and python.exists() else None


def ensure_venv(venv: Path | None = None) -> Path:
    """Build the LocalStack venv once (stamp-cached); raise LocalStackUnavailable if impossible."""
    venv = venv or DEFAULT_VENV
    ready = venv_python(venv)
    if ready is not None:
        return ready
    python313 = find_python313()
    if python313 is None:
        raise LocalStackUnavailable(
            "Python 3.13 not found (LocalStack 2026.3.0 needs it): install it (e.g. "
            "`pyenv install 3.13`) or set LOCALSTACK_PYTHON"
        )
    if not (venv / "bin" / "python").exists():
        subprocess.run([python313, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(CONSTRAINTS),
            f"localstack-core[runtime]=={LOCALSTACK_VERSION}",
        ],
        check=True,
    )
    for old in venv.glob(".installed-*"):
        old.unlink()
    _stamp(venv).touch()
    return venv / "bin" / "python"


# --- Running it --------------------------------------------------------------------------------


def pick_port() -> int:
    """4566 (LocalStack's usual port, what the `localstack` stack config expects) when free."""
    return DEFAULT_PORT if port_is_free("127.0.0.1", DEFAULT_PORT) else free_port()


def health(endpoint: str, timeout: float = 2.0) -> dict[str, str] | None:
    """The `/_localstack/health` service map, or None when LocalStack does not answer."""
    try:
        with urllib.request.urlopen(  # noqa: S310 - a loopback endpoint we started
            f"{endpoint}/_localstack/health", timeout=timeout
        ) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    services = body.get("services") if isinstance(body, dict) else None
    return services if isinstance(services, dict) else None


def host_mode_environment(port: int, state_dir: Path) -> dict[str, str]:
    """The environment that makes host-mode LocalStack work here (why: see localstack/README)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LOCALSTACK_", "PYTHON"))
    }
    env.update(
        GATEWAY_LISTEN=f"127.0.0.1:{port}",
        GATEWAY_SERVER="hypercorn",  # the default server binds 0.0.0.0 whatever GATEWAY_LISTEN says
        LOCALSTACK_HOST=f"127.0.0.1:{port}",
        SQS_ENDPOINT_STRATEGY="path",
        OVERRIDE_IN_DOCKER="0",  # the sandbox looks like a container; host mode writes to /var/lib
        FILESYSTEM_ROOT=str(state_dir / "fs"),
        HOME=str(state_dir / "home"),
        DNS_ADDRESS="0",  # its DNS server fails without an upstream
        DISABLE_EVENTS="1",
        SERVICES=SERVICES,
    )
    return env


@dataclass
class LocalStack:
    """A running host-mode LocalStack we started (or an external one we must not stop)."""

    endpoint: str
    external: bool = False
    process: HttpProcess | None = None
    state_dir: Path | None = None

    @property
    def pid(self) -> int | None:
        return self.process.started_pid if self.process else None


def start(venv: Path | None = None, timeout: float = READY_TIMEOUT_S) -> LocalStack:
    """Start LocalStack from the venv and wait until it is healthy. The caller must `stop()`."""
    venv = venv or DEFAULT_VENV
    python = venv_python(venv)
    if python is None:
        if find_python313() is None:
            raise LocalStackUnavailable(
                "Python 3.13 not found (LocalStack 2026.3.0 needs it), so there is no LocalStack "
                "venv: install Python 3.13 (e.g. `pyenv install 3.13`), then `make localstack-venv`"
            )
        raise LocalStackUnavailable(f"no LocalStack venv at {venv}: run `make localstack-venv`")
    port = pick_port()
    endpoint = f"http://127.0.0.1:{port}"
    state_dir = Path(tempfile.mkdtemp(prefix="localstack-"))
    (state_dir / "home").mkdir()
    log_path = state_dir / "localstack.log"
    process = HttpProcess(
        [str(python), "-m", "localstack.runtime.main"],
        url=f"{endpoint}/_localstack/health",
        env=host_mode_environment(port, state_dir),
        cwd=state_dir,
        log=log_path,
        ready_timeout_s=timeout,
        stop_grace_s=15.0,  # LocalStack may fork helpers; the kit stops the whole group
    )
    server = LocalStack(endpoint=endpoint, process=process, state_dir=state_dir)
    try:
        process.start()
    except NotReady as exc:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        stop(server)
        raise LocalStackUnavailable(f"LocalStack not healthy at {endpoint}: {exc}\n{tail}") from exc
    log.info("LocalStack ready at %s (pid %s)", endpoint, process.started_pid)
    return server


def stop(server: LocalStack) -> None:
    """Stop a LocalStack we started and delete its state; an external one is left alone."""
    if server.external or server.process is None:
        return
    server.process.terminate()
    if server.state_dir is not None:
        shutil.rmtree(server.state_dir, ignore_errors=True)


@contextlib.contextmanager
def localstack_server(venv: Path | None = None) -> Iterator[LocalStack]:
    """`LOCALSTACK_ENDPOINT` when set and healthy; else start one from the venv, stop it on exit.

    Raises LocalStackUnavailable (with the reason) when neither is possible.
    """
    external = os.environ.get("LOCALSTACK_ENDPOINT")
    if external:
        if health(external.rstrip("/")) is None:
            raise LocalStackUnavailable(f"LOCALSTACK_ENDPOINT={external} does not answer health")
        yield LocalStack(endpoint=external.rstrip("/"), external=True)
        return
    server = start(venv)
    try:
        yield server
    finally:
        stop(server)


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = argv[0] if argv else "ensure-venv"
    if command == "ensure-venv":
        if venv_python() is not None:
            log.info("localstack: venv ready at %s", DEFAULT_VENV)
            return 0
        try:
            started = time.monotonic()
            log.info("localstack: building %s (about 100 s, once)", DEFAULT_VENV)
            ensure_venv()
            log.info("localstack: venv built in %.0f s", time.monotonic() - started)
        except LocalStackUnavailable as exc:
            log.info("localstack: skipped, %s; the LocalStack test leg will be skipped", exc)
        return 0
    if command == "run":
        # Ctrl-C and SIGTERM both end in the `with` below, which stops LocalStack. SIGINT is set
        # explicitly: a shell starts background jobs with it ignored, and Python keeps that.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        with localstack_server() as server:
            log.info("LocalStack at %s; Ctrl-C stops it", server.endpoint)
            with contextlib.suppress(KeyboardInterrupt):
                while server.process is None or server.process.running():
                    time.sleep(1)
        return 0
    log.error("usage: python -m platform_cli.localstack [ensure-venv|run]")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
