"""Argo CD itself: its namespace and the pinned Helm release (HA in prod, metrics everywhere).

The AppProjects and the root Application are the GitOps bridge (`gitops_bridge.py`); they are
separate so that teardown can remove the bridge while Argo CD still runs to prune what it deployed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.platform import charts
from infra.platform.kube import namespaced_release


@dataclass(frozen=True)
class ArgoCdArgs:
    """Inputs of Argo CD.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        high_availability: replicas for server/repo-server/applicationset and redis-ha (prod).
        wait_for: what the release waits for: the monitoring CRDs (its ServiceMonitors).
    """

    k8s_provider: pulumi.ProviderResource
    high_availability: bool
    wait_for: Sequence[pulumi.Resource] = ()


class ArgoCd(pulumi.ComponentResource):
    """The `argocd` namespace and the argo-cd release (which brings the Argo CD CRDs)."""

    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: ArgoCdArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:platform:ArgoCd", name, None, opts)
        self.namespace, self.release = namespaced_release(
            f"{name}-namespace",
            f"{name}-release",
            charts.ARGO_CD,
            charts.argocd_values(high_availability=args.high_availability),
            parent=self,
            provider=args.k8s_provider,
            depends_on=args.wait_for,
        )
        self.register_outputs(
            {"namespace": self.namespace.metadata, "release": self.release.status}
        )
