"""Argo CD itself: its namespace and the pinned Helm release (HA in prod, metrics everywhere).

The AppProjects and the root Application are the GitOps bridge (`gitops_bridge.py`); they are
separate so that teardown can remove the bridge while Argo CD still runs to prune what it deployed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.platform import charts
from infra.platform.chart_component import NamespacedChart


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


class ArgoCd(NamespacedChart):
    """The `argocd` namespace and the argo-cd release (which brings the Argo CD CRDs)."""

    def __init__(
        self, name: str, args: ArgoCdArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        values = charts.argocd_values(high_availability=args.high_availability)
        super().__init__("platform:platform:ArgoCd", name, charts.ARGO_CD, values, args, opts)
        self.register_outputs(self.chart_outputs())
