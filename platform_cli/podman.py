"""Running podman and buildah: where they are, the runtime config they need, one call helper.

Images are built with buildah (chroot isolation, so no daemon) and workloads are run with
`podman kube play`; neither needs a Docker engine. `CONTAINERS_CONF` defaults to the file beside
this module (runc, cgroupfs, the host's ulimits), which suits CI sandboxes with hybrid cgroups.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CONTAINERS_CONF = Path(__file__).with_name("data") / "containers.conf"
TOOLS = ("podman", "buildah", "runc", "debootstrap")
INSTALL_HINT = "apt-get install -y podman buildah runc debootstrap uidmap"


class ContainerToolError(RuntimeError):
    """podman or buildah failed; the message carries the command and its output's tail."""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def unavailable_reason() -> str | None:
    """Why real images and containers cannot be used here, or None when they can."""
    missing = missing_tools()
    if missing:
        return f"{', '.join(missing)} not installed (install with: {INSTALL_HINT})"
    if os.geteuid() != 0:
        # Rootless podman needs subuid ranges and user namespaces that sandboxes rarely grant.
        return "podman and buildah run as root here (chroot isolation, host cgroups)"
    return None


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(
    args: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 600,
    input_text: str | None = None,
    log: Path | None = None,
) -> Result:
    """Run a podman/buildah command; with `log`, its output is appended there instead."""
    if log is not None:
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(args)}\n")
            handle.flush()
            completed = subprocess.run(
                list(args),
                env=tool_env(),
                input=input_text,
                stdout=handle,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
        result = Result(completed.returncode, "", "")
        if check and completed.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise ContainerToolError(
                f"{' '.join(args[:3])} ... failed ({completed.returncode}):\n{tail}"
            )
        return result
    completed = subprocess.run(
        list(args),
        env=tool_env(),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = Result(completed.returncode, completed.stdout, completed.stderr)
    if check and completed.returncode != 0:
        raise ContainerToolError(
            f"{' '.join(args)} failed ({completed.returncode}):\n{completed.stderr[-2000:]}"
        )
    return result


def image_exists(ref: str) -> bool:
    return run(["podman", "image", "exists", ref], check=False).returncode == 0
