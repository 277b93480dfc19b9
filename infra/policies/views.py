"""Resource views from what the offline harness recorded."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from infra.policies.model import ResourceView

if TYPE_CHECKING:  # the CrossGuard pack imports this package without the offline harness
    from platform_cli.offline import Declared

_VIEW_FIELDS = tuple(f.name for f in fields(ResourceView))
"""`ResourceView`'s fields: each is a same-named field of the harness's `DeclaredResource`."""


def views_from_declared(declared: Declared) -> list[ResourceView]:
    return [
        ResourceView(**{name: getattr(resource, name) for name in _VIEW_FIELDS})
        for resource in declared.resources
    ]
