"""Building a child component's Args from the layer's: same-named fields are mapped once, here.

The layer's Args and its children's Args name the same fact the same way (`k8s_provider`,
`high_availability`, `region`, `cluster_name`, ...). The child's dataclass field list is the one
place that says what the child takes; the caller names only what it computes or renames.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

ArgsT = TypeVar("ArgsT")


def child_args(target: type[ArgsT], *sources: object, **explicit: Any) -> ArgsT:
    """`target(...)` with each init field taken from `explicit`, else from the first source that
    has an attribute of that name, else the field's default.

    A required field that neither supplies fails as the dataclass constructor does (TypeError
    naming it), so a child never silently loses an input.
    """
    values = dict(explicit)
    for item in dataclasses.fields(target):  # type: ignore[arg-type]
        if not item.init or item.name in values:
            continue
        for source in sources:
            if hasattr(source, item.name):
                values[item.name] = getattr(source, item.name)
                break
    return target(**values)
