"""Reusable check: every taggable AWS resource a program declares carries the base tags.

A resource type is taggable when its pulumi-aws class accepts a `tags` argument; that is read from
the installed SDK (`_internal_init`'s signature), so a new resource type is covered without
maintaining a list here.

    from tests.infra.taggable import assert_tagged
    assert_tagged(declared)  # raises AssertionError listing each offender
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterable

from platform_cli.offline import Declared, DeclaredResource

BASE_TAG_KEYS: tuple[str, ...] = ("project", "stack", "managed-by")


@functools.cache
def is_taggable(type_token: str) -> bool:
    """True when the pulumi-aws class behind `aws:<module>/<name>:<Class>` accepts `tags`."""
    package, module_path, class_name = type_token.split(":")
    if package != "aws":
        return False
    module = module_path.split("/", 1)[0]
    python_module = "pulumi_aws" if module == "index" else f"pulumi_aws.{module}"
    cls = getattr(importlib.import_module(python_module), class_name)
    return "tags" in inspect.signature(cls._internal_init).parameters


def untagged(
    resources: Iterable[DeclaredResource], keys: Iterable[str] = BASE_TAG_KEYS
) -> list[str]:
    """`type name: missing [...]` for each taggable resource lacking any of `keys`."""
    wanted = tuple(keys)
    problems = []
    for resource in resources:
        if not resource.custom or not is_taggable(resource.type):
            continue
        tags = resource.inputs.get("tags") or {}
        missing = [key for key in wanted if key not in tags]
        if missing:
            problems.append(f"{resource.type} {resource.name}: missing {missing}")
    return problems


def assert_tagged(declared: Declared, keys: Iterable[str] = BASE_TAG_KEYS) -> int:
    """Assert every taggable resource has `keys`; return how many were checked (must be > 0)."""
    checked = sum(1 for r in declared.resources if r.custom and is_taggable(r.type))
    assert checked, "no taggable AWS resources were declared; the check would prove nothing"
    problems = untagged(declared.resources, keys)
    assert not problems, "untagged resources:\n" + "\n".join(problems)
    return checked
