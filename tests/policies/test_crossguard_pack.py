"""The CrossGuard pack, started the way the Pulumi CLI starts it, answers over its gRPC API.

The test runs `infra/policies/pack/__main__.py` as a process (it prints its port, as the CLI
expects), then sends the Analyze / AnalyzeStack requests `pulumi preview` would send. This checks
the wiring the offline plan cannot: policy names, enforcement levels, and that violations come
back from the same rule functions through pulumi-policy's own deserialisation and proxies.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2 as proto
from pulumi.runtime.proto import analyzer_pb2_grpc

from infra.config import REPO_ROOT
from infra.policies import Severity, all_rules
from tests.policies import cases
from tests.policies.cases import changed, urn

PACK = REPO_ROOT / "infra" / "policies" / "pack"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    process = subprocess.Popen(
        [sys.executable, str(PACK / "__main__.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PACK,
    )
    try:
        assert process.stdout is not None
        port_line = process.stdout.readline().strip()
        if not port_line.isdigit():
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"policy pack did not print its port: {port_line!r}\n{stderr}")
        channel = grpc.insecure_channel(f"127.0.0.1:{port_line}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def _by_policy(response: proto.AnalyzeResponse) -> dict[str, list[proto.AnalyzeDiagnostic]]:
    found: dict[str, list[proto.AnalyzeDiagnostic]] = {}
    for diagnostic in response.diagnostics:
        found.setdefault(diagnostic.policyName, []).append(diagnostic)
    return found


def test_pack_lists_every_rule_with_its_enforcement_level(analyzer) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "platform-guardrails"
    levels = {p.name: p.enforcementLevel for p in info.policies}
    expected = {
        r.id: proto.MANDATORY if r.severity is Severity.MANDATORY else proto.ADVISORY
        for r in all_rules()
    }
    assert levels == expected


def test_resource_policy_reports_public_rds(analyzer) -> None:
    type_ = "aws:rds/instance:Instance"
    bad = changed(cases.good_rds_instance(), "publiclyAccessible", True)
    request = proto.AnalyzeRequest(
        type=type_, name="db", urn=urn(type_, "db", "prod"), properties=_struct(bad)
    )
    diagnostics = _by_policy(analyzer.Analyze(request, timeout=30))
    [public] = diagnostics["rds-not-public"]
    assert public.message.endswith(
        "\nRDS instance is publicly accessible: set publiclyAccessible=false"
    )
    assert public.enforcementLevel == proto.MANDATORY

    good = proto.AnalyzeRequest(
        type=type_,
        name="db",
        urn=urn(type_, "db", "prod"),
        properties=_struct(cases.good_rds_instance()),
    )
    assert _by_policy(analyzer.Analyze(good, timeout=30)) == {}


def test_resource_policy_reads_the_stack_from_the_urn(analyzer) -> None:
    type_ = "aws:rds/instance:Instance"
    fourteen_days = changed(cases.good_rds_instance(), "backupRetentionPeriod", 14)
    for stack, expected in (("dev", 0), ("prod", 1)):
        request = proto.AnalyzeRequest(
            type=type_, name="db", urn=urn(type_, "db", stack), properties=_struct(fourteen_days)
        )
        found = _by_policy(analyzer.Analyze(request, timeout=30)).get("rds-backup-retention", [])
        assert len(found) == expected, (stack, found)


def _stack_request(force_ssl: str) -> proto.AnalyzeStackRequest:
    group_type, db_type = "aws:rds/parameterGroup:ParameterGroup", "aws:rds/instance:Instance"
    group_urn, db_urn = urn(group_type, "db-params"), urn(db_type, "db")
    group = cases.good_parameter_group()
    group["parameters"][1]["value"] = force_ssl
    return proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(
                type=group_type, name="db-params", urn=group_urn, properties=_struct(group)
            ),
            proto.AnalyzerResource(
                type=db_type,
                name="db",
                urn=db_urn,
                properties=_struct(cases.good_rds_instance()),
                dependencies=[group_urn],
                propertyDependencies={
                    "parameterGroupName": proto.AnalyzerPropertyDependencies(urns=[group_urn])
                },
            ),
        ]
    )


def test_stack_policy_follows_the_parameter_group_dependency(analyzer) -> None:
    assert "rds-ssl-forced" not in _by_policy(
        analyzer.AnalyzeStack(_stack_request("1"), timeout=30)
    )
    [weak] = _by_policy(analyzer.AnalyzeStack(_stack_request("0"), timeout=30))["rds-ssl-forced"]
    assert "does not set rds.force_ssl=1" in weak.message
    assert weak.urn == urn("aws:rds/instance:Instance", "db")


def test_unknown_input_during_preview_is_reported_not_guessed(analyzer) -> None:
    from pulumi.runtime.rpc import UNKNOWN

    type_ = "aws:rds/instance:Instance"
    pending = changed(cases.good_rds_instance(), "publiclyAccessible", UNKNOWN)
    request = proto.AnalyzeRequest(
        type=type_, name="db", urn=urn(type_, "db", "prod"), properties=_struct(pending)
    )
    [diagnostic] = _by_policy(analyzer.Analyze(request, timeout=30))["rds-not-public"]
    assert "during preview" in diagnostic.message
    assert diagnostic.enforcementLevel == proto.ADVISORY
