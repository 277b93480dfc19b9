"""Tracing: an OpenTelemetry collector (the apps' OTLP endpoint) in front of Jaeger v2.

The endpoint handed to the apps through the facts channel is `charts.OTLP_ENDPOINT`, the
collector's Service; Jaeger sits behind it and can be replaced without touching the apps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.platform import charts
from infra.platform.kube import helm_release, namespaced_release


@dataclass(frozen=True)
class TracingArgs:
    """Inputs of the tracing stack.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        high_availability: two collector replicas (prod).
        wait_for: resources the releases must wait for (e.g. the monitoring CRDs).
    """

    k8s_provider: pulumi.ProviderResource
    high_availability: bool
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
        super().__init__("platform:platform:Tracing", name, None, opts)
        self.namespace, self.jaeger = namespaced_release(
            f"{name}-namespace",
            f"{name}-jaeger",
            charts.JAEGER,
            charts.jaeger_values(),
            parent=self,
            provider=args.k8s_provider,
            depends_on=args.wait_for,
        )
        # The collector starts after Jaeger so its exporter finds the backend from the start.
        self.collector = helm_release(
            f"{name}-otel-collector",
            charts.OTEL_COLLECTOR,
            charts.otel_collector_values(high_availability=args.high_availability),
            parent=self,
            provider=args.k8s_provider,
            depends_on=[self.namespace, self.jaeger, *args.wait_for],
        )
        self.otlp_endpoint = charts.OTLP_ENDPOINT
        self.register_outputs(
            {
                "namespace": self.namespace.metadata,
                "jaeger": self.jaeger.status,
                "collector": self.collector.status,
                "otlp_endpoint": self.otlp_endpoint,
            }
        )
