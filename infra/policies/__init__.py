"""Policy as code: rules as pure functions, shared by `platform plan` and the CrossGuard pack.

    from infra.policies import evaluate, views_from_declared
    report = evaluate(views_from_declared(declared), stack="prod")

Each rule is `(resource_type, inputs, context) -> list[Violation]`; see `model.py` for the
context and `engine.py` for how the rules are run.
"""

from infra.policies.engine import PolicyReport, all_rules, check_resource, evaluate, rule_by_id
from infra.policies.model import ResourceView, Rule, RuleContext, Severity, Violation
from infra.policies.views import views_from_declared

__all__ = [
    "PolicyReport",
    "ResourceView",
    "Rule",
    "RuleContext",
    "Severity",
    "Violation",
    "all_rules",
    "check_resource",
    "evaluate",
    "rule_by_id",
    "views_from_declared",
]
