"""Resource views from what the offline harness recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.policies.model import ResourceView

if TYPE_CHECKING:  # the CrossGuard pack imports this package without the offline harness
    from platform_cli.offline import Declared


def views_from_declared(declared: Declared) -> list[ResourceView]:
    return [
        ResourceView(
            urn=resource.urn,
            type=resource.type,
            name=resource.name,
            inputs=resource.inputs,
            property_dependencies=resource.property_dependencies,
            provider=resource.provider,
            custom=resource.custom,
        )
        for resource in declared.resources
    ]
