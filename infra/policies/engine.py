"""Run every registered rule over a set of declared resources.

Importing this module registers the whole catalog (each rule module registers its rules on
import), so `all_rules()` is complete wherever it is called: the plan, the tests and the pack.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from infra.policies import (  # noqa: F401 - imported for their registrations
    cluster,
    compute,
    database,
    encryption,
    iam,
    kafka,
    kubernetes,
    network,
    storage,
    tagging,
)
from infra.policies.catalog import registered
from infra.policies.model import ResourceView, Rule, RuleContext, Severity, Violation


def all_rules() -> tuple[Rule, ...]:
    return tuple(registered())


def rule_by_id(rule_id: str) -> Rule:
    for candidate in registered():
        if candidate.id == rule_id:
            return candidate
    raise KeyError(f"unknown rule {rule_id!r}; known: {', '.join(r.id for r in registered())}")


@dataclass(frozen=True)
class PolicyReport:
    """What a policy run found: violations plus how many (resource, rule) checks ran."""

    violations: tuple[Violation, ...]
    checks_run: int
    rules: tuple[Rule, ...]

    @property
    def mandatory(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity is Severity.MANDATORY)

    @property
    def advisory(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.severity is Severity.ADVISORY)

    @property
    def passed(self) -> bool:
        return not self.mandatory


def check_resource(
    resource: ResourceView,
    stack: str,
    peers: Sequence[ResourceView] = (),
    rules: Iterable[Rule] | None = None,
) -> list[Violation]:
    """Every violation of `rules` (default: all) on one resource, with `peers` as its stack."""
    context = RuleContext(stack=stack, resource=resource, peers={p.urn: p for p in peers})
    found: list[Violation] = []
    for candidate in rules if rules is not None else registered():
        if candidate.applies_to(resource.type):
            found.extend(candidate.check(resource.type, resource.inputs, context))
    return found


def evaluate(resources: Sequence[ResourceView], stack: str) -> PolicyReport:
    """Check every custom resource against every rule that applies to its type."""
    rules = all_rules()
    peers = {resource.urn: resource for resource in resources}
    violations: list[Violation] = []
    checks = 0
    for resource in resources:
        if not resource.custom:
            continue  # components declare nothing in the cloud; their children are checked
        context = RuleContext(stack=stack, resource=resource, peers=peers)
        for candidate in rules:
            if candidate.applies_to(resource.type):
                checks += 1
                violations.extend(candidate.check(resource.type, resource.inputs, context))
    return PolicyReport(violations=tuple(sorted(violations)), checks_run=checks, rules=rules)
