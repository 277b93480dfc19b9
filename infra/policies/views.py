"""Resource views from what the offline harness recorded."""

from __future__ import annotations

from infra.offline import Declared
from infra.policies.model import ResourceView


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
