"""The vocabulary of policy rules: severities, violations, the resource view and the rule context.

A rule is a pure function `(resource_type, inputs, context) -> list[Violation]`. It reads only its
arguments: no Pulumi runtime, no I/O, no globals that change. The same function therefore runs
under the offline plan (inputs recorded by the mock monitor) and inside the CrossGuard pack
(inputs handed over by `pulumi preview`).

Most rules look at one resource. A few must look at others: an RDS instance is TLS-only only if the
parameter group it references sets `rds.force_ssl=1`; an S3 bucket is private only if a public
access block points at it. Those rules read the other resources through `RuleContext`, which
carries the whole declared set (by URN) and the property dependencies of the resource under check,
so they stay pure functions of their arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How a violation is enforced: `mandatory` fails the plan and blocks `pulumi up`."""

    MANDATORY = "mandatory"
    ADVISORY = "advisory"


@dataclass(frozen=True, order=True)
class Violation:
    """One broken rule on one resource, with a message that says what to change."""

    rule: str
    resource: str
    message: str
    severity: Severity


@dataclass(frozen=True)
class ResourceView:
    """What a rule may know about a declared resource (offline or under `pulumi preview`)."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)
    provider: str | None = None
    """Provider reference `<urn>::<id>`; None for the default provider."""
    custom: bool = True


@dataclass(frozen=True)
class RuleContext:
    """The resource under check, its stack, and (for cross-resource rules) everything else."""

    stack: str
    resource: ResourceView
    peers: Mapping[str, ResourceView] = field(default_factory=dict)
    """Every declared resource by URN. Empty when a caller validates one resource on its own."""

    @property
    def is_prod(self) -> bool:
        return self.stack == "prod"

    @property
    def has_peers(self) -> bool:
        return bool(self.peers)

    def referenced(self, prop: str) -> list[ResourceView]:
        """Declared resources that the input `prop` of the resource under check points at."""
        urns = self.resource.property_dependencies.get(prop, ())
        return [self.peers[urn] for urn in urns if urn in self.peers]

    def referencing(self, types: Iterable[str], prop: str) -> list[ResourceView]:
        """Declared resources of `types` whose input `prop` points at the resource under check."""
        wanted = set(types)
        return [
            peer
            for peer in self.peers.values()
            if peer.type in wanted and self.resource.urn in peer.property_dependencies.get(prop, ())
        ]

    def of_type(self, types: Iterable[str]) -> list[ResourceView]:
        wanted = set(types)
        return [peer for peer in self.peers.values() if peer.type in wanted]

    def provider_resource(self) -> ResourceView | None:
        """The explicit provider of the resource under check, if it is declared in the stack."""
        reference = self.resource.provider
        if not reference:
            return None
        urn = reference.rsplit("::", 1)[0] if reference.count("::") > 3 else reference
        return self.peers.get(urn)


Check = Callable[[str, Mapping[str, Any], RuleContext], list[Violation]]
"""The signature of every rule function."""


@dataclass(frozen=True)
class Rule:
    """A registered rule: its id, what it asks for, its severity and the function that checks."""

    id: str
    description: str
    severity: Severity
    resource_types: frozenset[str] | None
    """Types the rule applies to; None means every type (the function filters itself)."""
    check: Check
    needs_stack: bool = False
    """True when the rule reads other resources through the context (a CrossGuard stack policy)."""

    def applies_to(self, resource_type: str) -> bool:
        return self.resource_types is None or resource_type in self.resource_types
