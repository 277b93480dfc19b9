"""Metrics and alerting: kube-prometheus-stack (Prometheus, Alertmanager, Grafana, the CRDs).

Installed first among the add-ons: its CRDs (ServiceMonitor, PodMonitor, PrometheusRule) are used
by the other charts' ServiceMonitors and by the manifests in `gitops/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.platform import charts
from infra.platform.kube import namespaced_release


@dataclass(frozen=True)
class ObservabilityArgs:
    """Inputs of the metrics stack.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        high_availability: two Prometheus replicas and three Alertmanagers (prod).
        prometheus_retention: how long samples are kept, a Prometheus duration such as `15d`.
        prometheus_storage_gib: size of each Prometheus replica's volume.
        storage_class: the StorageClass of every volume (None: the cluster default).
        alert_receivers: Alertmanager receivers by severity; their credentials are files of the
            `alertmanager-receivers` Secret (External Secrets creates it, see external_secrets).
        wait_for: resources the release must wait for (the StorageClass).
    """

    k8s_provider: pulumi.ProviderResource
    high_availability: bool
    prometheus_retention: str
    prometheus_storage_gib: int
    storage_class: str | None = None
    alert_receivers: tuple[charts.AlertReceiver, ...] = ()
    wait_for: Sequence[pulumi.Resource] = ()


class Observability(pulumi.ComponentResource):
    """The `monitoring` namespace and the kube-prometheus-stack release."""

    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        # Validates retention/storage before any child exists (raises ValueError naming them).
        values = charts.kube_prometheus_stack_values(
            high_availability=args.high_availability,
            retention=args.prometheus_retention,
            storage_gib=args.prometheus_storage_gib,
            storage_class=args.storage_class,
            receivers=args.alert_receivers,
        )
        super().__init__("platform:platform:Observability", name, None, opts)
        self.namespace, self.release = namespaced_release(
            f"{name}-namespace",
            f"{name}-kube-prometheus-stack",
            charts.KUBE_PROMETHEUS_STACK,
            values,
            parent=self,
            provider=args.k8s_provider,
            depends_on=args.wait_for,
        )
        self.register_outputs(
            {
                "namespace": self.namespace.metadata,
                "release": self.release.status,
            }
        )
