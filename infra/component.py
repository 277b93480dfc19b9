"""The component contract, kept in one place instead of at the top and bottom of every component.

Every platform component (as in pulumi-eks and awsx) validates its Args before it registers
anything, so bad input declares nothing, and calls `register_outputs` last with every public
output. `PlatformComponent.__init__` does exactly that around the subclass's `declare`, which
only creates the children (named `f"{name}-<role>"`, parented with `self.child`) and returns the
outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import pulumi


class ValidatedArgs(Protocol):
    """Frozen component Args: `validate` raises ValueError naming the field and what is allowed."""

    def validate(self) -> None: ...


ArgsT = TypeVar("ArgsT", bound=ValidatedArgs)


class PlatformComponent(pulumi.ComponentResource, Generic[ArgsT]):
    """A `platform:<area>:<Type>` component: subclasses set `TYPE_TOKEN` and implement `declare`."""

    TYPE_TOKEN: ClassVar[str]

    def __init__(self, name: str, args: ArgsT, opts: pulumi.ResourceOptions | None = None) -> None:
        args.validate()
        super().__init__(self.TYPE_TOKEN, name, None, opts)
        self.register_outputs(self.declare(name, args))

    @property
    def child(self) -> pulumi.ResourceOptions:
        """Options of a plain child: parented to this component (its provider is inherited)."""
        return pulumi.ResourceOptions(parent=self)

    def declare(self, name: str, args: ArgsT) -> Mapping[str, Any]:
        """Create the children and return the public outputs to register."""
        raise NotImplementedError
