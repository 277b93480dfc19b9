"""`set-image`: the pipeline's promotion step. Validates first, then edits images.json and
re-renders, so a refused promotion leaves every file untouched."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from infra.contracts import APP_NAMES, ENVIRONMENTS
from infra.gitops.catalog import (
    APP_SPECS,
    Catalog,
    CatalogError,
    ImageCatalog,
    ensure_valid,
    load_images,
    tag_problem,
)
from infra.gitops.renderer import TreeDiff, render, write_tree


def promoted(images: ImageCatalog, env: str, app: str, tag: str) -> ImageCatalog:
    """A copy with the new tag, recording that it was promoted (not hand-edited)."""
    tags = {e: dict(apps) for e, apps in images.tags.items()}
    tags.setdefault(env, {})[app] = tag
    record = {e: dict(apps) for e, apps in images.promoted.items()}
    record.setdefault(env, {})[app] = tag
    return dataclasses.replace(images, tags=tags, promoted=record)


def set_image(env: str, app: str, tag: str, *, images_file: Path, root: Path) -> TreeDiff:
    problems = []
    if env not in ENVIRONMENTS:
        problems.append(f"--env: {env!r} is unknown; allowed: {', '.join(ENVIRONMENTS)}")
    if app not in APP_NAMES:
        problems.append(f"--app: {app!r} is unknown; allowed: {', '.join(APP_NAMES)}")
    reason = tag_problem(tag)
    if reason:
        problems.append(f"--tag: {reason}")
    if problems:
        raise CatalogError("refusing set-image:\n" + "\n".join(f"  - {p}" for p in problems))
    catalog = Catalog(apps=APP_SPECS, images=promoted(load_images(images_file), env, app, tag))
    ensure_valid(catalog)
    files = render(catalog)  # render fully before writing anything
    images_file.write_text(catalog.images.to_json())
    return write_tree(root, files, ENVIRONMENTS)
