"""IAM policy documents never allow `*` or `service:*` actions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import rule
from infra.policies.model import RuleContext
from infra.policies.values import as_list, get, is_wildcard_action, parse_json_object, statements

IAM_ROLE = "aws:iam/role:Role"
IAM_POLICY_DOCUMENT_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)


def wildcard_problems(policy: Any) -> Iterator[str]:
    """Messages for each Allow statement with a wildcard action (or NotAction) in a document."""
    if policy is None:
        return
    document = parse_json_object(policy)
    if document is None:
        yield "policy document is not valid JSON, so its actions cannot be checked"
        return
    for index, statement in enumerate(statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid") or f"#{index}"
        if statement.get("NotAction") is not None:
            yield f"statement {sid} allows NotAction, i.e. every action but a few"
        wild = sorted(a for a in as_list(statement.get("Action")) if is_wildcard_action(a))
        if wild:
            yield f"statement {sid} allows {', '.join(wild)}; name the actions it needs"


@rule(
    "iam-no-wildcard-actions",
    "IAM policies (managed, inline, role inline) allow no `*` or `service:*` action.",
    types=[*IAM_POLICY_DOCUMENT_TYPES, IAM_ROLE],
)
def iam_no_wildcard_actions(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if resource_type != IAM_ROLE:
        yield from wildcard_problems(inputs.get("policy"))
        return
    # A role's trust policy (assumeRolePolicy) only names sts:* actions and is not checked here.
    for entry in as_list(inputs.get("inlinePolicies")):
        name = get(entry, "name") or "?"
        for problem in wildcard_problems(get(entry, "policy")):
            yield f"inline policy {name}: {problem}"
