"""The same rules as CrossGuard policies, for `pulumi preview --policy-pack infra/policies/pack`.

Single-resource rules become `ResourceValidationPolicy`s. Rules that read other resources
(`Rule.needs_stack`: RDS TLS through its parameter group, S3 companions, ingress on a load
balancer's group) become `StackValidationPolicy`s, because only a stack policy sees the whole
declared set and its property dependencies. Enforcement follows the rule's severity.

During `pulumi preview` some inputs are unknown (an ID not yet allocated). pulumi-policy raises
`UnknownValueError` when a rule touches one and reports "can't run during preview" as advisory.
A stack policy checks each resource separately so one unknown input does not hide the others'
violations; the first unknown is re-raised at the end so it is still reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from infra.policies.engine import all_rules
from infra.policies.model import ResourceView, Rule, RuleContext, Severity

PACK_NAME = "platform-guardrails"

_ENFORCEMENT = {
    Severity.MANDATORY: EnforcementLevel.MANDATORY,
    Severity.ADVISORY: EnforcementLevel.ADVISORY,
}


def stack_of(urn: str) -> str:
    """The stack name inside a URN (`urn:pulumi:<stack>::<project>::<type>::<name>`)."""
    return urn.split("::", 1)[0].rsplit(":", 1)[-1]


def _view(
    urn: str,
    type_: str,
    name: str,
    props: Mapping[str, Any],
    property_dependencies: Mapping[str, Iterable[str]] | None = None,
    provider_urn: str | None = None,
) -> ResourceView:
    return ResourceView(
        urn=urn,
        type=type_,
        name=name,
        inputs=props,
        property_dependencies={k: tuple(v) for k, v in (property_dependencies or {}).items()},
        provider=provider_urn,
    )


def _report(violations: Iterable[Any], report_violation: ReportViolation, urn: str) -> None:
    for violation in violations:
        # pulumi-policy prefixes the policy's description and reports the policy name itself.
        report_violation(violation.message, urn)


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        provider = args.provider
        peers: dict[str, ResourceView] = {}
        if provider is not None:
            peers[provider.urn] = _view(
                provider.urn, provider.resource_type, provider.name, provider.props
            )
        resource = _view(
            args.urn,
            args.resource_type,
            args.name,
            args.props,
            provider_urn=provider.urn if provider is not None else None,
        )
        context = RuleContext(stack=stack_of(args.urn), resource=resource, peers=peers)
        _report(rule.check(args.resource_type, args.props, context), report_violation, args.urn)

    return ResourceValidationPolicy(
        name=rule.id,
        description=rule.description,
        enforcement_level=_ENFORCEMENT[rule.severity],
        validate=validate,
    )


def _stack_view(resource: PolicyResource) -> ResourceView:
    return _view(
        resource.urn,
        resource.resource_type,
        resource.name,
        resource.props,
        {key: [dep.urn for dep in deps] for key, deps in resource.property_dependencies.items()},
        resource.provider.urn if resource.provider is not None else None,
    )


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        views = [_stack_view(resource) for resource in args.resources]
        peers = {view.urn: view for view in views}
        unknown: UnknownValueError | None = None
        for view in views:
            if not rule.applies_to(view.type):
                continue
            context = RuleContext(stack=stack_of(view.urn), resource=view, peers=peers)
            try:
                _report(rule.check(view.type, view.inputs, context), report_violation, view.urn)
            except UnknownValueError as exc:
                unknown = unknown or exc
        if unknown is not None:
            raise unknown

    return StackValidationPolicy(
        name=rule.id,
        description=rule.description,
        enforcement_level=_ENFORCEMENT[rule.severity],
        validate=validate,
    )


def policies(rules: Iterable[Rule] | None = None) -> list[Policy]:
    """One CrossGuard policy per rule, in rule-id order."""
    chosen = list(rules) if rules is not None else list(all_rules())
    return [_stack_policy(r) if r.needs_stack else _resource_policy(r) for r in chosen]
