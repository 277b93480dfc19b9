"""The shape most platform add-ons share: one pinned chart in a namespace of its own.

Argo CD, kube-prometheus-stack, Fluent Bit and External Secrets are each a component that is
exactly that (External Secrets adds its store after the release). The namespace, the release
(waiting for the namespace and for what the args name) and the two outputs are declared here
once; each component keeps its own type token, args and values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from infra.platform.charts import ChartSpec
from infra.platform.kube import KubeChildren


class ReleaseArgs(Protocol):
    """What every add-on's Args carry for its release: the provider and what to wait for."""

    @property
    def k8s_provider(self) -> pulumi.ProviderResource: ...

    @property
    def wait_for(self) -> Sequence[pulumi.Resource]: ...


class NamespacedChart(pulumi.ComponentResource):
    """`<name>-namespace` (the chart's namespace) and `<name>-<release_role>` (its release).

    The subclass validates its args and builds the values before calling this (so nothing is
    declared for bad input), may add children after it, and calls `register_outputs` last with
    `chart_outputs()` plus its own.
    """

    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release
    kube: KubeChildren
    """Where the subclass declares its own further children (under it, same provider)."""

    def __init__(
        self,
        type_token: str,
        name: str,
        chart: ChartSpec,
        values: pulumi.Input[dict[str, Any]],
        args: ReleaseArgs,
        opts: pulumi.ResourceOptions | None,
        *,
        release_role: str = "release",
    ) -> None:
        super().__init__(type_token, name, None, opts)
        self.kube = KubeChildren(self, args.k8s_provider)
        self.namespace, self.release = self.kube.namespaced_release(
            f"{name}-namespace", f"{name}-{release_role}", chart, values, depends_on=args.wait_for
        )

    def chart_outputs(self) -> dict[str, Any]:
        return {"namespace": self.namespace.metadata, "release": self.release.status}
