"""Each image's requirements.txt pins exactly what pyproject.toml pins."""

from __future__ import annotations

import pytest

from infra.contracts import APPS
from tests.images.requirements_rules import check_requirements


@pytest.mark.parametrize("package", [app.package for app in APPS])
def test_image_requirements_are_pyproject_pins_and_cover_every_import(package: str) -> None:
    check_requirements(package)
