"""Build every bundled app's image for real, from the one `apps/Dockerfile`, with buildah.

- **Base.** The Dockerfile's default base (the official slim Python image) is used when it is
  present or can be pulled. Where no registry answers (CI sandboxes), a stand-in is made from
  Debian packages with `debootstrap`: the same Debian release and Python minor version as the
  official image, imported as a local image. Its tag carries a digest of its recipe.
- **Cache.** An app image is tagged `localhost/event-platform/<app>:<key>`, where the key is a
  digest of every input: the Dockerfile, the files it copies, the build arguments and the base
  image's id. An existing tag is not rebuilt, so a second run costs seconds; buildah's layer
  cache also keeps the dependency layer when only the sources change.
- **What ships is what runs.** `check_commands` runs every rendered workload's command, with
  `--help`, in the image the manifest names (see `platform_cli.rehearse` for the full run).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infra.contracts import APP_NAMES, AppContract, app_contract
from platform_cli import certs, podman

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO_ROOT / "apps" / "Dockerfile"
LOCAL_REPOSITORY = "localhost/event-platform"

# The stand-in base: Debian bookworm's CPython 3.11 (the official slim image is bookworm too).
STAND_IN_REPOSITORY = "localhost/platform/python"
STAND_IN_SUITE = "bookworm"
STAND_IN_PACKAGES = ("python3.11", "python3.11-venv", "python3-distutils", "ca-certificates")
# What the official image sets and our Dockerfile relies on (python on PATH, UTF-8).
STAND_IN_CHANGES = (
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
# Sources every image copies besides the app's own package (see apps/Dockerfile).
SHARED_SOURCES = (
    "apps/__init__.py",
    "apps/__main__.py",
    "apps/common",
    "apps/topics_job",
    "apps/db_roles",
    "apps/certs",
)

BaseChoice = Literal["auto", "official", "stand-in"]
Progress = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """A base or app image could not be made; the message says which and why."""


@dataclass(frozen=True)
class BuiltImage:
    app: str
    ref: str
    cached: bool
    seconds: float


def official_base() -> str:
    """The Dockerfile's default `PYTHON_IMAGE` (defined there once)."""
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    if not found:
        raise ImageBuildError(f"{DOCKERFILE.name}: no `ARG PYTHON_IMAGE=<image>` default")
    return found.group(1)


# --- the base ----------------------------------------------------------------------------------


def _stand_in_ref() -> str:
    recipe = "\n".join((STAND_IN_SUITE, *STAND_IN_PACKAGES, *STAND_IN_CHANGES))
    key = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"{STAND_IN_REPOSITORY}:3.11-{STAND_IN_SUITE}-debian-{key}"


def make_stand_in_base(log: Path, progress: Progress = lambda _msg: None) -> str:
    """The Debian stand-in base image, made once (about 1-2 min) and then reused."""
    ref = _stand_in_ref()
    if podman.image_exists(ref):
        return ref
    progress(f"making the stand-in base {ref} with debootstrap (no registry is reachable)")
    with tempfile.TemporaryDirectory(prefix="platform-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        podman.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(STAND_IN_PACKAGES)}",
                STAND_IN_SUITE,
                str(rootfs),
            ],
            timeout=900,
            log=log,
        )
        for name in ("python", "python3"):
            (rootfs / "usr" / "local" / "bin" / name).symlink_to("/usr/bin/python3.11")
        # Package caches are not part of a slim image.
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        changes = [arg for change in STAND_IN_CHANGES for arg in ("--change", change)]
        archive = Path(tmp) / "rootfs.tar"
        podman.run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], timeout=300, log=log)
        podman.run(["podman", "import", *changes, str(archive), ref], timeout=300, log=log)
    return ref


def resolve_base(choice: BaseChoice, log: Path, progress: Progress = lambda _msg: None) -> str:
    """The base image to build on: the official one where it can be had, else the stand-in."""
    if choice == "stand-in":
        return make_stand_in_base(log, progress)
    official = official_base()
    if podman.image_exists(official):
        return official
    pulled = podman.run(["podman", "pull", "--quiet", official], check=False, timeout=300, log=log)
    if pulled.returncode == 0:
        return official
    if choice == "official":
        raise ImageBuildError(f"cannot pull the official base {official}; see {log}")
    progress(f"official base {official} cannot be pulled here; using the Debian stand-in")
    return make_stand_in_base(log, progress)


def _image_id(ref: str) -> str:
    return podman.run(["podman", "image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()


# --- app images --------------------------------------------------------------------------------


def _source_files(contract: AppContract) -> Iterator[Path]:
    """Every file the Dockerfile copies for this app (what `.dockerignore` lets through)."""
    for relative in (*SHARED_SOURCES, f"apps/{contract.package}"):
        path = REPO_ROOT / relative
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for candidate in candidates:
            if candidate.is_file() and "__pycache__" not in candidate.parts:
                yield candidate


def build_args(contract: AppContract, base: str) -> dict[str, str]:
    return {"PYTHON_IMAGE": base, "APP": contract.package, "PORT": str(contract.port)}


def inputs_key(contract: AppContract, base_id: str) -> str:
    """A digest of everything the image is made from."""
    digest = hashlib.sha256()
    digest.update(DOCKERFILE.read_bytes())
    digest.update(b"format=docker")
    for name, value in sorted(build_args(contract, base_id).items()):
        digest.update(f"\0{name}={value}".encode())
    for path in _source_files(contract):
        digest.update(f"\0{path.relative_to(REPO_ROOT).as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def local_ref(app: str, key: str) -> str:
    return f"{LOCAL_REPOSITORY}/{app}:{key}"


def build_app(app: str, base: str, log: Path) -> BuiltImage:
    contract = app_contract(app)
    started = time.monotonic()
    ref = local_ref(app, inputs_key(contract, _image_id(base)))
    if podman.image_exists(ref):
        return BuiltImage(app, ref, cached=True, seconds=time.monotonic() - started)
    args = [f"--build-arg={k}={v}" for k, v in build_args(contract, base).items()]
    podman.run(
        [
            "buildah",
            "bud",
            "--isolation",
            "chroot",
            "--network",
            "host",
            "--layers",
            # Docker's image format: OCI's has no HEALTHCHECK (buildah drops it there).
            "--format",
            "docker",
            # The host's CA bundle, for pip inside the build behind a TLS-inspecting proxy.
            "--volume",
            "/etc/ssl/certs:/etc/ssl/certs:ro",
            *args,
            "--file",
            str(DOCKERFILE),
            "--tag",
            ref,
            str(REPO_ROOT),
        ],
        timeout=1200,
        log=log,
    )
    _remove_stale(app, keep=ref)
    return BuiltImage(app, ref, cached=False, seconds=time.monotonic() - started)


def _remove_stale(app: str, keep: str, older_than_s: float = 24 * 3600) -> None:
    """Remove this app's builds of other inputs once they are a day old: every change makes a
    new tag, and they would pile up. Younger ones stay, because another checkout on the same
    machine (a second worktree, a CI job) may be using its own build right now."""
    import json
    from datetime import UTC, datetime

    listed = podman.run(
        ["podman", "images", "--format", "json", f"{LOCAL_REPOSITORY}/{app}"], check=False
    )
    now = datetime.now(UTC).timestamp()
    for image in json.loads(listed.stdout or "[]"):
        refs = [ref for ref in image.get("Names") or [] if ref != keep]
        if refs and now - float(image.get("Created", now)) > older_than_s:
            for ref in refs:
                podman.run(["podman", "rmi", ref], check=False)  # in use by a container: kept


def build_all(
    log_dir: Path,
    base: BaseChoice = "auto",
    apps: Iterable[str] = APP_NAMES,
    progress: Progress = lambda _msg: None,
) -> list[BuiltImage]:
    """Build (or reuse) every app image; fails with the tool's output tail on the first error."""
    reason = podman.unavailable_reason()
    if reason:
        raise ImageBuildError(f"cannot build images here: {reason}")
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        certs.ensure_bundle()
    except certs.CertsError as exc:
        raise ImageBuildError(f"the RDS CA bundle every image ships: {exc}") from None
    base_ref = resolve_base(base, log_dir / "base.log", progress)
    built = []
    for app in apps:
        progress(f"image {app}")
        built.append(build_app(app, base_ref, log_dir / f"build-{app}.log"))
    return built


# --- what the manifests run --------------------------------------------------------------------


@dataclass(frozen=True)
class CommandCheck:
    app: str
    command: tuple[str, ...]
    sources: tuple[str, ...]
    """The manifests (`<env>/<folder>/<file>`) whose containers run this command."""
    ok: bool
    output: str


def rendered_commands(
    gitops_root: Path, envs: Iterable[str]
) -> dict[tuple[str, tuple[str, ...]], list[str]]:
    """Every distinct (app image, container command) the rendered workloads of `envs` run."""
    from platform_cli.rehearsal.plan import image_app, load_env

    found: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for env in envs:
        for workload in load_env(gitops_root, env).workloads:
            for container in workload.containers:
                key = (image_app(container["image"]), tuple(container["command"]))
                found.setdefault(key, []).append(f"{env}/{workload.source}")
    return found


def run_confined(image: str, *args: str, entrypoint: str | None = None) -> podman.Result:
    """`podman run` as Kubernetes runs our pods: user 10001, read-only root, no network (and no
    health checks: podman would try to set up systemd timers for a one-off run)."""
    extra = ["--entrypoint", entrypoint] if entrypoint else []
    return podman.run(
        [
            "podman",
            "run",
            "--rm",
            "--no-healthcheck",
            "--network",
            "none",
            "--read-only",
            "--user",
            "10001:10001",
            *extra,
            image,
            *args,
        ],
        check=False,
        timeout=120,
    )


def check_commands(
    local: dict[str, str], commands: dict[tuple[str, tuple[str, ...]], list[str]]
) -> list[CommandCheck]:
    """Run each command with `--help` in its app's image, as Kubernetes would start it: the
    command replaces the entrypoint, as the non-root user, on a read-only root, offline. A
    console script the image lacks, or a module it cannot import, fails here."""
    import json

    checks = []
    for (app, command), sources in sorted(commands.items()):
        result = run_confined(local[app], "--help", entrypoint=json.dumps(list(command)))
        output = (result.stdout + result.stderr).strip()
        checks.append(
            CommandCheck(app, command, tuple(sources), result.returncode == 0, output[-600:])
        )
    return checks


def push_all(built: Iterable[BuiltImage], registry: str, tag: str) -> list[str]:
    """Tag each built image `<registry>/<app>:<tag>` and push it (log in to the registry first,
    e.g. `podman login --password-stdin`). Returns the pushed references."""
    pushed = []
    for image in built:
        target = f"{registry}/{image.app}:{tag}"
        podman.run(["podman", "tag", image.ref, target])
        podman.run(["podman", "push", target], timeout=1200)
        pushed.append(target)
    return pushed
