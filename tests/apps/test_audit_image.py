"""The audit image: multi-stage, slim pinned base, non-root, HEALTHCHECK, pinned deps."""

from __future__ import annotations

from infra.contracts import app_contract
from tests.apps.image_rules import check_dockerfile, check_requirements


def test_dockerfile_follows_the_image_rules() -> None:
    check_dockerfile("audit", app_contract("audit").port)


def test_image_requirements_are_pyproject_pins_and_cover_every_import() -> None:
    check_requirements("audit")
