"""Tracing: an OpenTelemetry collector (the apps' OTLP endpoint) in front of Jaeger v2.

The endpoint handed to the apps through the facts channel is `charts.OTLP_ENDPOINT`, the
collector's Service; Jaeger sits behind it and can be replaced without touching the apps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.contracts import TRACING_NAMESPACE
from infra.platform import charts
from infra.platform.kube import MANAGED_BY_LABELS, KubeChildren


@dataclass(frozen=True)
class TracingArgs:
    """Inputs of the tracing stack.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        high_availability: two collector replicas (prod).
        trace_storage_gib: Jaeger's badger volume (a PVC declared here); None: traces in memory.
        storage_class: that volume's StorageClass (None: the cluster default).
        wait_for: resources the releases must wait for (the StorageClass).
    """

    k8s_provider: pulumi.ProviderResource
    high_availability: bool
    trace_storage_gib: int | None = None
    storage_class: str | None = None
    wait_for: Sequence[pulumi.Resource] = ()


class Tracing(pulumi.ComponentResource):
    """The `tracing` namespace, Jaeger and the OTLP collector."""

    namespace: k8s.core.v1.Namespace
    jaeger: k8s.helm.v3.Release
    collector: k8s.helm.v3.Release
    otlp_endpoint: str

    def __init__(
        self, name: str, args: TracingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.trace_storage_gib is not None and args.trace_storage_gib < 1:
            raise ValueError(f"trace_storage_gib: {args.trace_storage_gib}; allowed: >= 1")
        super().__init__("platform:platform:Tracing", name, None, opts)
        persistent = args.trace_storage_gib is not None
        kube = KubeChildren(self, args.k8s_provider)
        self.namespace = kube.namespace(f"{name}-namespace", TRACING_NAMESPACE)
        self.trace_volume: k8s.core.v1.PersistentVolumeClaim | None = None
        jaeger_needs: list[pulumi.Resource] = [self.namespace, *args.wait_for]
        if persistent:
            self.trace_volume = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-jaeger-badger",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=charts.JAEGER_BADGER_PVC,
                    namespace=TRACING_NAMESPACE,
                    labels=MANAGED_BY_LABELS,
                    # WaitForFirstConsumer: the claim binds only once Jaeger's pod (created by
                    # the release, which waits for this claim) is scheduled, so Pulumi must not
                    # wait for `Bound` here.
                    annotations={"pulumi.com/skipAwait": "true"},
                ),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    access_modes=["ReadWriteOnce"],
                    storage_class_name=args.storage_class,
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                        requests={"storage": f"{args.trace_storage_gib}Gi"}
                    ),
                ),
                opts=kube.opts([self.namespace, *args.wait_for]),
            )
            jaeger_needs.append(self.trace_volume)
        self.jaeger = kube.helm_release(
            f"{name}-jaeger",
            charts.JAEGER,
            charts.jaeger_values(persistent=persistent),
            depends_on=jaeger_needs,
        )
        # The collector starts after Jaeger so its exporter finds the backend from the start.
        self.collector = kube.helm_release(
            f"{name}-otel-collector",
            charts.OTEL_COLLECTOR,
            charts.otel_collector_values(high_availability=args.high_availability),
            depends_on=[self.namespace, self.jaeger, *args.wait_for],
        )
        self.otlp_endpoint = charts.OTLP_ENDPOINT
        self.register_outputs(
            {
                "namespace": self.namespace.metadata,
                "jaeger": self.jaeger.status,
                "trace_volume": self.trace_volume.metadata if self.trace_volume else None,
                "collector": self.collector.status,
                "otlp_endpoint": self.otlp_endpoint,
            }
        )
