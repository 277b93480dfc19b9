"""The rule catalog: the `@rule` decorator turns a message generator into a registered rule.

A rule body yields plain messages; the decorator wraps it into the public signature
`(resource_type, inputs, context) -> list[Violation]` and records it with its id and severity.
Registration happens when a rule module is imported; `infra.policies.engine` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from infra.policies.model import Check, Rule, RuleContext, Severity, Violation

MessageGenerator = Callable[[str, Mapping[str, Any], RuleContext], Iterable[str]]

_CATALOG: dict[str, Rule] = {}


def rule(
    rule_id: str,
    description: str,
    *,
    severity: Severity = Severity.MANDATORY,
    types: Iterable[str] | None,
    needs_stack: bool = False,
) -> Callable[[MessageGenerator], Check]:
    """Register the decorated generator as rule `rule_id`; ids must be unique."""

    def register(body: MessageGenerator) -> Check:
        def check(
            resource_type: str, inputs: Mapping[str, Any], context: RuleContext
        ) -> list[Violation]:
            return [
                Violation(rule_id, context.resource.name, message, severity)
                for message in body(resource_type, inputs, context)
            ]

        check.__name__ = body.__name__
        check.__doc__ = body.__doc__
        if rule_id in _CATALOG:
            raise ValueError(f"rule id {rule_id!r} is registered twice")
        _CATALOG[rule_id] = Rule(
            id=rule_id,
            description=description,
            severity=severity,
            resource_types=frozenset(types) if types is not None else None,
            check=check,
            needs_stack=needs_stack,
        )
        return check

    return register


def registered() -> Iterator[Rule]:
    """Every registered rule, sorted by id (a stable order for reports and the pack)."""
    for rule_id in sorted(_CATALOG):
        yield _CATALOG[rule_id]
