"""KubeconfigCluster: the localstack stack's cluster is a kubeconfig context, with no AWS at all."""

from __future__ import annotations

import pulumi
import pytest

from infra.cluster import KubeconfigCluster, KubeconfigClusterArgs
from infra.config import load_stack_file
from platform_cli.offline import Declared, run_program


def declare(args: KubeconfigClusterArgs) -> Declared:
    def program() -> None:
        local = KubeconfigCluster("local", args)
        pulumi.export("cluster_name", local.cluster_name)
        pulumi.export("provider_urn", local.provider.urn)

    return run_program(program, stack="localstack", region="us-east-1")


@pytest.fixture(scope="module")
def local() -> Declared:
    cfg = load_stack_file("localstack")
    assert cfg.cluster.mode == "kubeconfig"
    assert cfg.cluster.kubeconfig_context
    return declare(
        KubeconfigClusterArgs(context=cfg.cluster.kubeconfig_context, cluster_name="plat-local")
    )


def test_declares_only_a_kubernetes_provider_for_the_context(local: Declared) -> None:
    types = sorted(r.type for r in local.resources)
    assert types == ["platform:cluster:KubeconfigCluster", "pulumi:providers:kubernetes"]
    provider = local.one("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "kind-platform"
    assert provider.inputs["enableServerSideApply"] in (True, "true")
    # No machine path in the state: the provider finds the kubeconfig file itself at run time.
    assert "kubeconfig" not in provider.inputs


def test_provider_is_a_child_and_outputs_are_registered(local: Declared) -> None:
    component = local.one("platform:cluster:KubeconfigCluster")
    provider = local.one("pulumi:providers:kubernetes")
    assert provider.parent == component.urn
    assert local.outputs == {"cluster_name": "plat-local", "provider_urn": provider.urn}
    assert set(local.component_outputs[component.urn]) == {"cluster_name", "provider"}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (KubeconfigClusterArgs(context="", cluster_name="x"), "context: ''"),
        (KubeconfigClusterArgs(context="kind platform", cluster_name="x"), "'kind platform'"),
        (KubeconfigClusterArgs(context="kind-platform", cluster_name="-x"), "cluster_name: '-x'"),
    ],
)
def test_invalid_args_name_the_field(args: KubeconfigClusterArgs, fragment: str) -> None:
    errors: list[str] = []

    def program() -> None:
        try:
            KubeconfigCluster("local", args)
        except ValueError as exc:
            errors.append(str(exc))

    declared = run_program(program, stack="localstack", region="us-east-1")
    assert len(errors) == 1
    assert fragment in errors[0]
    assert declared.resources == []
