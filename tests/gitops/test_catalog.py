"""Bad catalog input fails naming the field and the allowed values, before anything is written."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from infra.gitops.catalog import (
    APP_SPECS,
    IMAGES_FILE,
    Catalog,
    CatalogError,
    Resources,
    Sizing,
    check_catalog,
    load_images,
)
from infra.gitops.renderer import render


def _with_app(catalog: Catalog, name: str, **changes: Any) -> Catalog:
    apps = tuple(
        dataclasses.replace(spec, **changes) if spec.name == name else spec for spec in catalog.apps
    )
    return dataclasses.replace(catalog, apps=apps)


def _with_sizing(catalog: Catalog, name: str, env: str, sizing: Sizing) -> Catalog:
    spec = catalog.app(name)
    return _with_app(catalog, name, sizing={**spec.sizing, env: sizing})


def _with_tag(catalog: Catalog, env: str, app: str, tag: str) -> Catalog:
    tags = {e: dict(a) for e, a in catalog.images.tags.items()}
    tags[env][app] = tag
    return dataclasses.replace(catalog, images=dataclasses.replace(catalog.images, tags=tags))


def test_the_shipped_catalog_is_valid(catalog: Catalog) -> None:
    assert check_catalog(catalog) == []
    assert {spec.name for spec in APP_SPECS} == {"events-api", "notifier", "audit", "reminders"}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: _with_sizing(c, "notifier", "prod", Sizing(0, 0, 2)),
            ["apps[notifier].sizing.prod.replicas: 0 (min 0); allowed: >= 1"],
        ),
        (
            lambda c: _with_sizing(c, "notifier", "dev", Sizing(3, 4, 2)),
            ["apps[notifier].sizing.dev.min_replicas: 4 > max_replicas 2", "allowed: min_replicas"],
        ),
        (
            lambda c: _with_sizing(c, "audit", "prod", Sizing(2, 2, 9)),
            ["apps[audit].sizing.prod.max_replicas: 9 exceeds the partitions", "allowed: 1..6"],
        ),
        (
            lambda c: _with_sizing(c, "events-api", "prod", Sizing(1, 1, 4)),
            ["apps[events-api].sizing.prod.min_replicas: 1; allowed: >= 2"],
        ),
        (
            lambda c: _with_tag(c, "prod", "audit", "latest"),
            ["images.json: tags.prod.audit: 'latest' is a mutable tag; allowed: a git commit id"],
        ),
        (
            lambda c: _with_app(c, "audit", resources=Resources("50m", "128Mi", "500m", None)),
            ["apps[audit].resources.memory_limit: missing; allowed: a Kubernetes quantity"],
        ),
        (
            lambda c: _with_app(c, "notifier", log_level={"dev": "LOUD"}),
            ["apps[notifier].log_level.dev: 'LOUD'; allowed: DEBUG, INFO, WARNING, ERROR"],
        ),
        (
            lambda c: _with_app(c, "notifier", sizing={"qa": Sizing(1, 1, 1)}),
            ["apps[notifier].sizing.qa: unknown env; allowed: localstack, dev, staging, prod"],
        ),
        (
            lambda c: dataclasses.replace(
                c, apps=(*c.apps, dataclasses.replace(c.apps[1], name="billing"))
            ),
            ["apps[billing]: unknown app; allowed: events-api, notifier, audit"],
        ),
    ],
)
def test_bad_input_names_field_and_allowed_values(
    catalog: Catalog, mutate: object, expected: list[str]
) -> None:
    bad = mutate(catalog)  # type: ignore[operator]
    problems = "\n".join(check_catalog(bad))
    for fragment in expected:
        assert fragment in problems
    with pytest.raises(CatalogError):
        render(bad)  # render validates first; nothing reaches write_tree


def test_images_file_with_unknown_env_and_app(tmp_path: Path) -> None:
    data = json.loads(IMAGES_FILE.read_text())
    data["tags"]["qa"] = {"events-api": "1.0.0"}
    data["tags"]["dev"]["billing"] = "1.0.0"
    path = tmp_path / "images.json"
    path.write_text(json.dumps(data))
    catalog = Catalog(apps=APP_SPECS, images=load_images(path))
    problems = "\n".join(check_catalog(catalog))
    assert "env 'qa' is unknown; allowed: localstack, dev, staging, prod" in problems
    assert "tags.dev.billing: unknown app; allowed: events-api, notifier, audit" in problems


def test_images_file_with_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "images.json"
    path.write_text(json.dumps({"tags": [], "registry": {}}))
    with pytest.raises(CatalogError, match="registries: missing or not a mapping"):
        load_images(path)
