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


InputsTest = Callable[[Mapping[str, Any]], bool]


def companion_rule(
    rule_id: str,
    description: str,
    *,
    types: Iterable[str],
    companions: Iterable[str],
    prop: str,
    holds: InputsTest,
    missing: str,
    holds_inline: InputsTest | None = None,
) -> Check:
    """Register a stack rule met by a companion resource: some declared resource of `companions`
    whose input `prop` points at the one under check satisfies `holds` (e.g. a bucket and its
    public access block). With `holds_inline`, the resource's own inputs may satisfy it instead.
    Otherwise the rule reports `missing`.
    """
    companion_types = tuple(companions)

    @rule(rule_id, description, types=types, needs_stack=True)
    def has_companion(
        resource_type: str, inputs: Mapping[str, Any], context: RuleContext
    ) -> Iterator[str]:
        if holds_inline is not None and holds_inline(inputs):
            return
        if not any(holds(peer.inputs) for peer in context.referencing(companion_types, prop)):
            yield missing

    return has_companion


def registered() -> Iterator[Rule]:
    """Every registered rule, sorted by id (a stable order for reports and the pack)."""
    for rule_id in sorted(_CATALOG):
        yield _CATALOG[rule_id]
