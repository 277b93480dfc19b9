"""`PlatformComponent`: the contract every core component inherits, on a minimal component."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from infra.component import PlatformComponent
from tests.infra.components import declare_component


@dataclass(frozen=True)
class _LogArgs:
    retention_days: int

    def validate(self) -> None:
        if self.retention_days < 1:
            raise ValueError(f"retention_days: {self.retention_days}; allowed: 1 or more")


class _Logs(PlatformComponent[_LogArgs]):
    TYPE_TOKEN = "platform:test:Logs"

    log_group_name: pulumi.Output[str]

    def declare(self, name: str, args: _LogArgs) -> dict[str, Any]:
        group = aws.cloudwatch.LogGroup(
            f"{name}-group", retention_in_days=args.retention_days, opts=self.child
        )
        self.log_group_name = group.name
        return {"log_group_name": self.log_group_name}


def test_registers_under_its_token_with_parented_children_and_the_declared_outputs() -> None:
    declared = declare_component(lambda: _Logs("logs", _LogArgs(retention_days=7)), "dev")
    component = declared.one("platform:test:Logs")
    group = declared.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.name == "logs-group"
    assert group.parent == component.urn
    assert group.inputs["retentionInDays"] == 7
    assert set(declared.component_outputs[component.urn]) == {"log_group_name"}


def test_bad_args_are_refused_before_anything_is_registered() -> None:
    def program() -> None:
        with pytest.raises(ValueError, match="retention_days: 0; allowed: 1 or more"):
            _Logs("logs", _LogArgs(retention_days=0))

    declared = declare_component(program, "dev")
    assert declared.of_type("platform:test:Logs") == []
    assert declared.of_type("aws:cloudwatch/logGroup:LogGroup") == []
