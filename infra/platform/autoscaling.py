"""Autoscaling: metrics-server (resource metrics for the HPA) and KEDA (Kafka-lag scaling)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.platform import charts
from infra.platform.kube import KubeChildren


@dataclass(frozen=True)
class AutoscalingArgs:
    """Inputs of the autoscaling add-ons.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        high_availability: two replicas of metrics-server and of the KEDA operator (prod).
        local_cluster: a kind/k3d/minikube cluster (metrics-server skips kubelet TLS checks).
        wait_for: resources KEDA must wait for: the monitoring CRDs (its ServiceMonitors) and,
            on EKS, the KEDA operator's Pod Identity association (it must exist before the pod).
    """

    k8s_provider: pulumi.ProviderResource
    high_availability: bool
    local_cluster: bool
    wait_for: Sequence[pulumi.Resource] = ()


class Autoscaling(pulumi.ComponentResource):
    """metrics-server in kube-system, KEDA in its own namespace."""

    keda_namespace: k8s.core.v1.Namespace
    metrics_server: k8s.helm.v3.Release
    keda: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: AutoscalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:platform:Autoscaling", name, None, opts)
        kube = KubeChildren(self, args.k8s_provider)
        # kube-system exists on every cluster: it is never declared (so never deleted) here.
        self.metrics_server = kube.helm_release(
            f"{name}-metrics-server",
            charts.METRICS_SERVER,
            charts.metrics_server_values(
                high_availability=args.high_availability, local_cluster=args.local_cluster
            ),
        )
        self.keda_namespace, self.keda = kube.namespaced_release(
            f"{name}-keda-namespace",
            f"{name}-keda",
            charts.KEDA,
            charts.keda_values(high_availability=args.high_availability),
            depends_on=args.wait_for,
        )
        self.register_outputs(
            {
                "keda_namespace": self.keda_namespace.metadata,
                "metrics_server": self.metrics_server.status,
                "keda": self.keda.status,
            }
        )
