"""Small shared builders for the platform components: namespaces and pinned Helm releases.

Kept here (no ComponentResource) so every component declares its Kubernetes children the same
way: explicit namespace objects, `create_namespace` off, pinned chart version and repository,
values built in Python, and the Kubernetes provider passed explicitly. A component makes one
`KubeChildren(self, provider)` and declares every Kubernetes child through it, so the parent
and the provider are stated once per component instead of once per child.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.platform.charts import RELEASE_TIMEOUT_SECONDS, ChartSpec

MANAGED_BY_LABELS = {"app.kubernetes.io/managed-by": "pulumi", "platform/layer": "platform"}


@dataclass(frozen=True)
class CustomResourceKind:
    """One kind of custom resource: its API version, kind, and whether it lives in a namespace
    (a fact of the CRD, so a cluster-scoped kind never gets one and a namespaced kind always
    does)."""

    api_version: str
    kind: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        """The API group (`api_version` without its version)."""
        return self.api_version.rpartition("/")[0]


@dataclass(frozen=True)
class KubeChildren:
    """The Kubernetes children of one component: each under `parent`, with the cluster's
    `provider` and explicit ordering."""

    parent: pulumi.Resource
    provider: pulumi.ProviderResource

    def opts(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        """Options of a Kubernetes child: parent, the cluster's provider and explicit ordering."""
        return pulumi.ResourceOptions(
            parent=self.parent, provider=self.provider, depends_on=list(depends_on)
        )

    def namespace(
        self,
        resource_name: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.core.v1.Namespace:
        """An explicitly managed namespace (Helm's `create_namespace` stays off everywhere)."""
        return k8s.core.v1.Namespace(
            resource_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name, labels={**MANAGED_BY_LABELS, **(labels or {})}
            ),
            opts=self.opts(depends_on),
        )

    def helm_release(
        self,
        resource_name: str,
        spec: ChartSpec,
        values: pulumi.Input[dict[str, Any]],
        *,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.helm.v3.Release:
        """A Helm release of a pinned chart; Pulumi waits until its workloads are ready.

        Waiting matters: custom resources and webhooks of the chart are used by later resources,
        and they only work once the operator's pods run.
        """
        return k8s.helm.v3.Release(
            resource_name,
            name=spec.release,
            chart=spec.chart,
            version=spec.version,
            namespace=spec.namespace,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=spec.repository),
            values=values,
            create_namespace=False,
            skip_crds=False,
            cleanup_on_fail=True,
            max_history=5,
            timeout=RELEASE_TIMEOUT_SECONDS,
            opts=self.opts(depends_on),
        )

    def namespaced_release(
        self,
        namespace_resource: str,
        release_resource: str,
        spec: ChartSpec,
        values: pulumi.Input[dict[str, Any]],
        *,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> tuple[k8s.core.v1.Namespace, k8s.helm.v3.Release]:
        """The chart's namespace (`spec.namespace`) and its release, which waits for it."""
        ns = self.namespace(namespace_resource, spec.namespace)
        return ns, self.helm_release(release_resource, spec, values, depends_on=[ns, *depends_on])

    def custom_resource(
        self,
        resource_name: str,
        kind: CustomResourceKind,
        *,
        name: str,
        namespace: str | None = None,
        spec: Any,
        depends_on: Sequence[pulumi.Resource],
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        finalizers: list[str] | None = None,
    ) -> k8s.apiextensions.CustomResource:
        """A custom resource; `depends_on` must name the Release that installs its CRD, and
        `namespace` is given exactly when the kind is namespaced."""
        if not depends_on:
            raise ValueError(
                f"{kind.kind} {name!r}: a custom resource must depend on its operator release"
            )
        if (namespace is not None) != kind.namespaced:
            allowed = "a namespace" if kind.namespaced else "none (cluster-scoped kind)"
            raise ValueError(f"{kind.kind} {name!r}: namespace {namespace!r}; allowed: {allowed}")
        return k8s.apiextensions.CustomResource(
            resource_name,
            api_version=kind.api_version,
            kind=kind.kind,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=name,
                namespace=namespace,
                labels={**MANAGED_BY_LABELS, **(labels or {})},
                annotations=annotations,
                finalizers=finalizers,
            ),
            spec=spec,
            opts=self.opts(depends_on),
        )
