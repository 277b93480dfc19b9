"""Every committed stack passes every mandatory rule; broken configurations are caught.

Two ways to break a stack, used where each is honest:

* Through the real components with broken Args, under the mock monitor: what Args allow
  (prod RDS without deletion protection or final snapshot, a 7-day backup in prod).
* By mutating the declared inputs of the real prod program: what no Args or stack config can
  express, because the components hard-code it (RDS `publiclyAccessible=False`, MSK
  `clientBroker="TLS"`). The mutation stands for a code regression in a component, which is
  exactly what the policy exists to catch; the rules then see the same shape the program declares.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from infra.contracts import ENVIRONMENTS
from infra.policies import ResourceView, evaluate, views_from_declared
from platform_cli.offline import run_program
from platform_cli.plan_cmd import exit_code


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_committed_stack_passes_every_mandatory_rule(stack: str, declared) -> None:
    report = evaluate(views_from_declared(declared(stack)), stack)
    assert report.mandatory == (), "\n".join(
        f"{v.rule} {v.resource}: {v.message}" for v in report.mandatory
    )
    assert report.checks_run > 0
    assert exit_code(report) == 0


def _mutated(views: list[ResourceView], type_: str, **changes: object) -> list[ResourceView]:
    out = []
    for view in views:
        if view.type == type_:
            inputs = copy.deepcopy(dict(view.inputs))
            for dotted, value in changes.items():
                node = inputs
                *parents, last = dotted.split("__")
                for step in parents:
                    node = node[step]
                node[last] = value
            view = dataclasses.replace(view, inputs=inputs)
        out.append(view)
    return out


def _messages(report, rule: str) -> list[str]:
    return [v.message for v in report.violations if v.rule == rule]


def test_prod_with_public_rds_is_caught(declared) -> None:
    views = _mutated(
        views_from_declared(declared("prod")), "aws:rds/instance:Instance", publiclyAccessible=True
    )
    report = evaluate(views, "prod")
    assert _messages(report, "rds-not-public") == [
        "RDS instance is publicly accessible: set publiclyAccessible=false"
    ]
    assert exit_code(report) == 1


def test_prod_with_plaintext_msk_is_caught(declared) -> None:
    views = _mutated(
        views_from_declared(declared("prod")),
        "aws:msk/cluster:Cluster",
        encryptionInfo__encryptionInTransit__clientBroker="TLS_PLAINTEXT",
        clientAuthentication__unauthenticated=True,
    )
    report = evaluate(views, "prod")
    [tls] = _messages(report, "msk-client-tls-only")
    assert tls.startswith("MSK client traffic is TLS_PLAINTEXT, allowed: TLS only")
    assert _messages(report, "msk-iam-auth") == [
        "MSK allows unauthenticated clients: set clientAuthentication.unauthenticated=false"
    ]


def test_prod_parameter_group_without_force_ssl_is_caught(declared) -> None:
    views = views_from_declared(declared("prod"))
    group = next(v for v in views if v.type == "aws:rds/parameterGroup:ParameterGroup")
    kept = [p for p in group.inputs["parameters"] if p["name"] != "rds.force_ssl"]
    views = _mutated(views, group.type, parameters=kept)
    [message] = _messages(evaluate(views, "prod"), "rds-ssl-forced")
    assert f"parameter group {group.name} does not set rds.force_ssl=1" in message


def _database_program(**overrides: Any):
    """The real Database component with prod-like Args, changed by `overrides`."""

    def program() -> None:
        from infra.data.database import Database, DatabaseArgs

        args = DatabaseArgs(
            identifier="plat-prod-postgres",
            engine_version="16.6",
            parameter_group_family="postgres16",
            instance_class="db.r6g.large",
            allocated_storage_gib=100,
            max_allocated_storage_gib=1000,
            multi_az=True,
            backup_retention_days=30,
            database_name="platform",
            performance_insights_retention_days=31,
            vpc_id="vpc-1",
            subnet_ids=["subnet-a", "subnet-b"],
            client_security_group_ids=["sg-nodes"],
            kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
            tags={"project": "platform", "stack": "prod", "managed-by": "pulumi"},
        )
        Database("database", dataclasses.replace(args, **overrides))

    return program


def test_real_database_component_with_prod_args_passes() -> None:
    declared = run_program(_database_program(), stack="prod", region="eu-west-1")
    report = evaluate(views_from_declared(declared), "prod")
    assert report.mandatory == ()


def test_real_database_component_with_broken_prod_args_is_caught() -> None:
    program = _database_program(
        deletion_protection=False, final_snapshot=False, backup_retention_days=7
    )
    declared = run_program(program, stack="prod", region="eu-west-1")
    report = evaluate(views_from_declared(declared), "prod")
    assert _messages(report, "rds-deletion-protection-prod") == [
        "prod RDS instance has no deletion protection: set deletionProtection=true",
        "prod RDS instance would be deleted without a final snapshot: set "
        "skipFinalSnapshot=false and finalSnapshotIdentifier",
    ]
    assert _messages(report, "rds-backup-retention") == [
        "backupRetentionPeriod is 7 days; allowed in prod: 30 days or more"
    ]
    # The same Args are fine for dev, where 7 days and no deletion protection are allowed.
    assert evaluate(views_from_declared(declared), "dev").mandatory == ()
