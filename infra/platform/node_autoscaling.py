"""Node autoscaling on EKS: cluster-autoscaler on the managed node groups.

Why cluster-autoscaler and not Karpenter: the node groups already carry the hardened launch
template (IMDSv2 with hop limit 1, gp3 root volumes encrypted with the EBS key, our security
groups) and EKS manages their AMI updates and drains. cluster-autoscaler only moves each group's
desired size between the min/max of the stack config, so there is one way nodes are made, and it
is the one already tested; Karpenter would add a second node-provisioning path (its own
EC2NodeClass, instance profile, interruption queue) to harden and keep in step. The prod floor:
its on-demand group's `minSize` (config requires >= 2), spot groups above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.platform import charts
from infra.platform.kube import KubeChildren


@dataclass(frozen=True)
class NodeAutoscalingArgs:
    """Inputs: cluster, region and Kubernetes minor; the limits from `nodeAutoscaling`."""

    k8s_provider: pulumi.ProviderResource
    cluster_name: pulumi.Input[str]
    region: str
    kubernetes_version: str
    max_nodes_total: int
    scale_down_utilization_threshold: float
    scale_down_unneeded_minutes: int
    wait_for: Sequence[pulumi.Resource] = ()


class NodeAutoscaling(pulumi.ComponentResource):
    """The cluster-autoscaler release in kube-system."""

    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: NodeAutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        def values(cluster: str) -> dict[str, object]:
            return charts.cluster_autoscaler_values(
                cluster_name=cluster,
                region=args.region,
                kubernetes_version=args.kubernetes_version,
                max_nodes_total=args.max_nodes_total,
                scale_down_utilization_threshold=args.scale_down_utilization_threshold,
                scale_down_unneeded_minutes=args.scale_down_unneeded_minutes,
            )

        values("validation")  # bad limits or version fail before any child exists
        super().__init__("platform:platform:NodeAutoscaling", name, None, opts)
        self.release = KubeChildren(self, args.k8s_provider).helm_release(
            f"{name}-cluster-autoscaler",
            charts.CLUSTER_AUTOSCALER,
            pulumi.Output.from_input(args.cluster_name).apply(values),
            depends_on=args.wait_for,
        )
        self.register_outputs({"release": self.release.status})
