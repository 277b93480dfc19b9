"""Metrics and alerting: kube-prometheus-stack (Prometheus, Alertmanager, Grafana, the CRDs).

Installed first among the add-ons: its CRDs (ServiceMonitor, PodMonitor, PrometheusRule) are used
by the other charts' ServiceMonitors and by the manifests in `gitops/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.platform import charts
from infra.platform.chart_component import NamespacedChart


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


class Observability(NamespacedChart):
    """The `monitoring` namespace and the kube-prometheus-stack release."""

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
        super().__init__(
            "platform:platform:Observability",
            name,
            charts.KUBE_PROMETHEUS_STACK,
            values,
            args,
            opts,
            release_role="kube-prometheus-stack",
        )
        self.register_outputs(self.chart_outputs())
