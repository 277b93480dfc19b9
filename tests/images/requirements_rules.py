"""The image's requirements.txt pins must be pyproject.toml's (one version everywhere).

What the built image really contains and runs is tested on the real images (test_images.py).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>~!; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_pins() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {_name(r): r.strip() for r in data["project"]["dependencies"]}


def image_requirements(app: str) -> list[str]:
    lines = (REPO / "apps" / app / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def third_party_imports(*packages: str) -> set[str]:
    """Top-level modules imported anywhere in the given source folders, minus stdlib and `apps`."""
    found: set[str] = set()
    for package in packages:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {
        m for m in found if m not in sys.stdlib_module_names and m not in {"apps", "__future__"}
    }


def check_requirements(app: str) -> None:
    pins = pyproject_pins()
    required = image_requirements(app)
    for requirement in required:
        assert pins.get(_name(requirement)) == requirement, (
            f"apps/{app}/requirements.txt pins {requirement!r}, pyproject.toml has "
            f"{pins.get(_name(requirement))!r}"
        )
    names = _with_dependencies({_name(r) for r in required})
    distributions = packages_distributions()
    for module in third_party_imports(f"apps/{app}", "apps/common"):
        owners = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        assert owners & names, f"apps/{app} imports {module!r} but its image does not install it"


def _with_dependencies(names: set[str]) -> set[str]:
    """The distributions plus everything they pull in (what pip installs into the image)."""
    from importlib.metadata import PackageNotFoundError, requires

    closure, todo = set(names), list(names)
    while todo:
        try:
            deps = requires(todo.pop()) or []
        except PackageNotFoundError:
            continue
        for dep in deps:
            if "extra ==" in dep:
                continue
            name = _name(dep)
            if name not in closure:
                closure.add(name)
                todo.append(name)
    return closure
