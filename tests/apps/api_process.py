"""events-api (`serve` or `relay`) as a real OS process, for scenarios that signal it or read its
threads and logs: `python -m apps.events_api.cli <verb>` with the test's environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from platform_cli.embedded import free_port
from tests.apps.consumer_harness import REPO_ROOT, wait_until


@dataclass
class ApiProcess:
    verb: str  # "serve" or "relay"
    env: dict[str, str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, ready_timeout_s: float = 60.0) -> ApiProcess:
        args = [sys.executable, "-m", "apps.events_api.cli", self.verb]
        if self.verb == "serve":
            self.port = free_port()
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env={**os.environ, "LOG_LEVEL": "WARNING", **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if self.verb == "serve":
            assert wait_until(self.ready, timeout=ready_timeout_s), self.log()[-3000:]
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, api_key: str) -> httpx.Client:
        """An HTTP client of this server that sends `api_key` as the bearer token."""
        headers = {"Authorization": f"Bearer {api_key}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def ready(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.log()[-3000:]
        try:
            return httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def threads(self) -> int:
        """The process's thread count, from the kernel (/proc/<pid>/status)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no Threads: line in /proc status")

    def terminate(self, timeout_s: float = 20.0) -> tuple[int, float]:
        """SIGTERM and wait; (exit status, seconds it took)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout_s)
        return code, time.monotonic() - started

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def unstructured_lines(log: str) -> list[str]:
    """Lines of a JSON log that are not one JSON object each (a stray traceback, a print)."""
    bad = []
    for line in log.splitlines():
        if not line.strip():
            continue
        try:
            parsed: Any = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(parsed, dict):
            bad.append(line)
    return bad
