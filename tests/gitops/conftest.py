"""Fixtures for the GitOps tier: the catalog, the freshly rendered files, the committed tree."""

from __future__ import annotations

import pytest

from infra.gitops.catalog import Catalog, load_catalog
from infra.gitops.renderer import GITOPS_ROOT, render


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def rendered(catalog: Catalog) -> dict[str, str]:
    """What `platform gitops render` writes for every env, keyed `<env>/<path>`."""
    return render(catalog)


@pytest.fixture(scope="session")
def committed() -> dict[str, str]:
    """The tree as committed under gitops/ (what ArgoCD syncs)."""
    return {
        path.relative_to(GITOPS_ROOT).as_posix(): path.read_text()
        for path in sorted(GITOPS_ROOT.rglob("*.yaml"))
    }
