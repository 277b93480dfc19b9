"""The real images, built once per session with buildah from apps/Dockerfile (cached by their
inputs, so an unchanged tree reuses them in about a second).

Where podman/buildah cannot run, every test here is skipped with the reason (`.ci/run` installs
them; see platform_cli/podman.py for what is needed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_cli import images, podman

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    reason = podman.unavailable_reason()
    if reason:
        pytest.skip(f"real images and containers cannot run here: {reason}")
    built = images.build_all(REPO / ".rehearsal" / "logs", base="auto")
    return {image.app: image.ref for image in built}


run_in = images.run_confined
"""`podman run` as Kubernetes runs our pods: non-root, read-only root, no network."""
