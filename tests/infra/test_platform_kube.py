"""`KubeChildren.custom_resource`: the kind says whether a namespace is given, and the resource
is declared under the component with the cluster's provider."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from infra.platform.external_secrets import CLUSTER_SECRET_STORE, EXTERNAL_SECRET
from infra.platform.ingress import INGRESS_CLASS_PARAMS
from infra.platform.kube import KubeChildren
from platform_cli.offline import run_program


def test_the_group_is_the_api_version_without_its_version() -> None:
    assert INGRESS_CLASS_PARAMS.group == "elbv2.k8s.aws"
    assert EXTERNAL_SECRET.group == "external-secrets.io"


def _declare(
    kind_name: str, namespace: str | None
) -> tuple[list[str], list[tuple[str, str | None]]]:
    """Declare one ClusterSecretStore or ExternalSecret; return the errors and (type, parent)."""
    kind = {"store": CLUSTER_SECRET_STORE, "secret": EXTERNAL_SECRET}[kind_name]
    errors: list[str] = []

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="x")
        owner = pulumi.ComponentResource("platform:test:Owner", "owner")
        operator = k8s.core.v1.Namespace("operator", opts=pulumi.ResourceOptions(provider=provider))
        try:
            KubeChildren(owner, provider).custom_resource(
                "object", kind, name="x", namespace=namespace, spec={}, depends_on=[operator]
            )
        except ValueError as exc:
            errors.append(str(exc))

    d = run_program(program, stack="dev", region="eu-west-1")
    return errors, [(r.type, r.parent) for r in d.resources if r.name == "object"]


@pytest.mark.parametrize(
    ("kind_name", "namespace", "fragment"),
    [
        ("store", "apps", "ClusterSecretStore 'x': namespace 'apps'; allowed: none"),
        ("secret", None, "ExternalSecret 'x': namespace None; allowed: a namespace"),
    ],
)
def test_a_namespace_that_does_not_fit_the_kind_is_refused_before_declaring(
    kind_name: str, namespace: str | None, fragment: str
) -> None:
    errors, declared = _declare(kind_name, namespace)
    assert errors and fragment in errors[0]
    assert declared == []


@pytest.mark.parametrize(("kind_name", "namespace"), [("store", None), ("secret", "apps")])
def test_a_fitting_object_is_declared_under_its_component(
    kind_name: str, namespace: str | None
) -> None:
    errors, declared = _declare(kind_name, namespace)
    assert errors == []
    [(type_, parent)] = declared
    assert type_.startswith("kubernetes:external-secrets.io/v1:")
    assert parent is not None and parent.endswith("platform:test:Owner::owner")
