"""Every Helm chart the platform layer installs: name, repository, pinned version, namespace.

Each chart is defined once here (design principle 1) together with a values builder per stack
shape. Values are plain Python dicts built by pure functions, so tests can assert on them without
running Pulumi, and nothing is copied from a YAML blob. Where a value is not obvious, the comment
next to it says why it is set.

Versions are exact semver pins (the tests reject ranges and `latest`): a chart upgrade is a
reviewed one-line diff here, never something a `pulumi up` picks up by itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from infra.contracts import (
    APP_NAMESPACE,
    ARGOCD_NAMESPACE,
    CNPG_OPERATOR_NAMESPACE,
    DATABASE_NAMESPACE,
    EXTERNAL_SECRETS_NAMESPACE,
    KAFKA_NAMESPACE,
    KEDA_NAMESPACE,
    KUBE_SYSTEM_NAMESPACE,
    MONITORING_NAMESPACE,
    OTLP_HTTP_PORT,
    TRACING_NAMESPACE,
)

EXACT_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")

# ServiceAccounts that get an EKS Pod Identity association. The chart values below pin these names
# (instead of letting the chart derive them from the release name) because the association is
# keyed by namespace + ServiceAccount name and must exist before the pods start.
EXTERNAL_SECRETS_SERVICE_ACCOUNT = "external-secrets"
KEDA_OPERATOR_SERVICE_ACCOUNT = "keda-operator"

# In-cluster DNS names that the facts channel hands to the apps.
OTEL_COLLECTOR_NAME = "otel-collector"
JAEGER_NAME = "jaeger"
OTLP_ENDPOINT = (
    f"http://{OTEL_COLLECTOR_NAME}.{TRACING_NAMESPACE}.svc.cluster.local:{OTLP_HTTP_PORT}"
)


@dataclass(frozen=True)
class ChartSpec:
    """One pinned Helm chart.

    Attributes:
        release: Helm release name (also the stem of the Pulumi resource name).
        chart: chart name inside the repository.
        repository: the chart repository URL (`repository_opts.repo`).
        version: exact chart version; never a range.
        namespace: namespace the release is installed into (created explicitly by Pulumi, except
            `kube-system`).
    """

    release: str
    chart: str
    repository: str
    version: str
    namespace: str

    def __post_init__(self) -> None:
        if not EXACT_SEMVER.match(self.version):
            raise ValueError(
                f"chart {self.chart!r}: version {self.version!r} is not pinned; "
                "allowed: an exact MAJOR.MINOR.PATCH"
            )
        if not self.repository.startswith("https://"):
            # Helm would fetch the chart (and its index) unauthenticated and unencrypted.
            raise ValueError(
                f"chart {self.chart!r}: repository {self.repository!r}; allowed: an https:// URL"
            )


ARGO_CD = ChartSpec(
    release="argocd",
    chart="argo-cd",
    repository="https://argoproj.github.io/argo-helm",
    version="8.0.1",  # Argo CD v3.0
    namespace=ARGOCD_NAMESPACE,
)
KUBE_PROMETHEUS_STACK = ChartSpec(
    release="kube-prometheus-stack",
    chart="kube-prometheus-stack",
    repository="https://prometheus-community.github.io/helm-charts",
    version="76.5.1",
    namespace=MONITORING_NAMESPACE,
)
JAEGER = ChartSpec(
    release="jaeger",
    chart="jaeger",
    repository="https://jaegertracing.github.io/helm-charts",
    version="4.1.5",  # chart 4.x ships Jaeger v2 (built on the OpenTelemetry collector)
    namespace=TRACING_NAMESPACE,
)
OTEL_COLLECTOR = ChartSpec(
    release="otel-collector",
    chart="opentelemetry-collector",
    repository="https://open-telemetry.github.io/opentelemetry-helm-charts",
    version="0.104.0",
    namespace=TRACING_NAMESPACE,
)
EXTERNAL_SECRETS = ChartSpec(
    release="external-secrets",
    chart="external-secrets",
    repository="https://charts.external-secrets.io",
    version="0.19.2",  # serves the external-secrets.io/v1 API used below
    namespace=EXTERNAL_SECRETS_NAMESPACE,
)
METRICS_SERVER = ChartSpec(
    release="metrics-server",
    chart="metrics-server",
    repository="https://kubernetes-sigs.github.io/metrics-server/",
    version="3.12.2",
    namespace=KUBE_SYSTEM_NAMESPACE,
)
KEDA = ChartSpec(
    release="keda",
    chart="keda",
    repository="https://kedacore.github.io/charts",
    version="2.17.2",
    namespace=KEDA_NAMESPACE,
)
STRIMZI = ChartSpec(
    release="strimzi",
    chart="strimzi-kafka-operator",
    repository="https://strimzi.io/charts/",
    version="0.45.0",  # last line with KRaft + node pools behind annotations; runs Kafka 3.9.0
    namespace=KAFKA_NAMESPACE,
)
CLOUDNATIVE_PG = ChartSpec(
    release="cnpg",
    chart="cloudnative-pg",
    repository="https://cloudnative-pg.github.io/charts",
    version="0.23.0",  # operator 1.25
    namespace=CNPG_OPERATOR_NAMESPACE,
)

ALL_CHARTS: tuple[ChartSpec, ...] = (
    ARGO_CD,
    KUBE_PROMETHEUS_STACK,
    JAEGER,
    OTEL_COLLECTOR,
    EXTERNAL_SECRETS,
    METRICS_SERVER,
    KEDA,
    STRIMZI,
    CLOUDNATIVE_PG,
)

# Helm waits for the release's workloads to be ready; CRD-heavy charts on a fresh cluster can
# take several minutes (image pulls), and a too-short timeout leaves a half-installed release.
RELEASE_TIMEOUT_SECONDS = 900


PROMETHEUS_RETENTION = re.compile(r"^\d+[smhdwy]$")
"""A Prometheus duration (`15d`); the stack config's `tier.prometheus.retention` is checked too."""


def _replicas(high_availability: bool, ha_count: int = 2) -> int:
    return ha_count if high_availability else 1


# --- Values builders ------------------------------------------------------------------------------


ARGOCD_APP_HEALTH_LUA = """hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
"""


def argocd_values(*, high_availability: bool) -> dict[str, Any]:
    """Argo CD: metrics on everywhere, HA (replicas + redis-ha) only where configured."""
    metrics = {"enabled": True, "serviceMonitor": {"enabled": True}}
    replicas = _replicas(high_availability)
    return {
        "global": {"logging": {"format": "json"}},
        "configs": {
            "cm": {
                # How often Argo CD polls Git (no webhooks are configured); the default is 180s.
                "timeout.reconciliation": "120s",
                # Since Argo CD 1.8 an Application has no health of its own, so sync waves of
                # child Applications (config -> topics -> apps) would not wait for each other.
                # This restores the app-of-apps health check the root app's waves rely on.
                "resource.customizations.health.argoproj.io_Application": ARGOCD_APP_HEALTH_LUA,
            },
        },
        # One application controller even in HA: it shards by cluster, and we manage exactly
        # one cluster, so a second replica would only idle.
        "controller": {"replicas": 1, "metrics": metrics},
        "server": {"replicas": replicas, "metrics": metrics},
        "repoServer": {"replicas": replicas, "metrics": metrics},
        "applicationSet": {"replicas": replicas, "metrics": metrics},
        "notifications": {"metrics": metrics},
        # redis-ha spreads over three nodes (anti-affinity); the plain redis is a single pod.
        "redis-ha": {"enabled": high_availability},
        "redis": {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}},
    }


def _namespace_selector(namespaces: tuple[str, ...]) -> dict[str, Any]:
    return {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": list(namespaces),
            }
        ]
    }


# Namespaces whose ServiceMonitors/PodMonitors/PrometheusRules Prometheus picks up: the apps and
# every add-on the platform installs.
MONITORED_NAMESPACES: tuple[str, ...] = (
    APP_NAMESPACE,
    MONITORING_NAMESPACE,
    ARGOCD_NAMESPACE,
    TRACING_NAMESPACE,
    EXTERNAL_SECRETS_NAMESPACE,
    KEDA_NAMESPACE,
    KUBE_SYSTEM_NAMESPACE,
    KAFKA_NAMESPACE,
    CNPG_OPERATOR_NAMESPACE,
    DATABASE_NAMESPACE,
)


def kube_prometheus_stack_values(
    *, high_availability: bool, retention: str, storage_gib: int
) -> dict[str, Any]:
    """kube-prometheus-stack with the tier's retention/storage and app-friendly selectors."""
    if not PROMETHEUS_RETENTION.match(retention):
        raise ValueError(f"retention {retention!r}; allowed: a Prometheus duration such as 15d")
    if storage_gib < 1:
        raise ValueError(f"storage_gib {storage_gib}; allowed: >= 1")
    selector_all: dict[str, Any] = {}  # empty selector = every object in the selected namespaces
    namespaces = _namespace_selector(MONITORED_NAMESPACES)
    return {
        # The CRDs (ServiceMonitor, PrometheusRule, ...) come with the chart: the manifests in
        # gitops/ use them, so this release must exist before the root app syncs. Helm creates
        # CRDs directly (no last-applied annotation), so their size is not a problem here; ArgoCD
        # applies the CRs with ServerSideApply=true.
        "crds": {"enabled": True},
        "alertmanager": {
            "enabled": True,
            "alertmanagerSpec": {"replicas": _replicas(high_availability, 3)},
        },
        "grafana": {
            "enabled": True,
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    # Any ConfigMap labelled grafana_dashboard: "1" becomes a dashboard.
                    "label": "grafana_dashboard",
                    "labelValue": "1",
                    "searchNamespace": "ALL",
                },
            },
        },
        "prometheus": {
            "prometheusSpec": {
                "replicas": _replicas(high_availability),
                "retention": retention,
                # Without these four switches the operator only selects objects carrying this
                # Helm release's labels, and the apps' ServiceMonitors (rendered into gitops/,
                # labelled by ArgoCD, not Helm) would be silently ignored.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "probeSelectorNilUsesHelmValues": False,
                "serviceMonitorSelector": selector_all,
                "podMonitorSelector": selector_all,
                "ruleSelector": selector_all,
                "probeSelector": selector_all,
                "serviceMonitorNamespaceSelector": namespaces,
                "podMonitorNamespaceSelector": namespaces,
                "ruleNamespaceSelector": namespaces,
                "probeNamespaceSelector": namespaces,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        # No storageClassName: the cluster default (gp2/gp3 through the EBS CSI
                        # add-on on EKS, local-path or standard on kind/k3d).
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": f"{storage_gib}Gi"}},
                        }
                    }
                },
            }
        },
    }


def jaeger_values() -> dict[str, Any]:
    """Jaeger v2 all-in-one behind the collector; it only receives OTLP from the collector.

    Traces are kept in memory: they are a debugging aid in this platform, not a record, and a
    durable backend (OpenSearch/Cassandra) would double the add-on footprint.
    """
    return {
        "fullnameOverride": JAEGER_NAME,
        "provisionDataStore": {"cassandra": False, "elasticsearch": False},
        "storage": {"type": "memory"},
        "allInOne": {"enabled": True},
        "agent": {"enabled": False},
        "collector": {"enabled": False},
        "query": {"enabled": False},
    }


def otel_collector_values(*, high_availability: bool) -> dict[str, Any]:
    """The OTLP endpoint the apps export to; forwards traces to Jaeger.

    A collector in front of Jaeger keeps the apps' endpoint stable (the `OTLP_ENDPOINT` fact)
    whatever the tracing backend becomes, and batches/limits memory before the backend.
    """
    jaeger_otlp = f"{JAEGER_NAME}-collector.{TRACING_NAMESPACE}.svc.cluster.local:4317"
    return {
        "mode": "deployment",
        "fullnameOverride": OTEL_COLLECTOR_NAME,
        "replicaCount": _replicas(high_availability),
        "image": {"repository": "otel/opentelemetry-collector-k8s"},
        "config": {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "http": {"endpoint": f"${{env:MY_POD_IP}}:{OTLP_HTTP_PORT}"},
                        "grpc": {"endpoint": "${env:MY_POD_IP}:4317"},
                    }
                }
            },
            "processors": {
                "memory_limiter": {"check_interval": "5s", "limit_percentage": 80},
                "batch": {},
            },
            "exporters": {"otlp/jaeger": {"endpoint": jaeger_otlp, "tls": {"insecure": True}}},
            "service": {
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["memory_limiter", "batch"],
                        "exporters": ["otlp/jaeger"],
                    }
                }
            },
        },
    }


def external_secrets_values(*, high_availability: bool) -> dict[str, Any]:
    """ESO: CRDs from the chart, a fixed ServiceAccount name for the Pod Identity association."""
    return {
        "installCRDs": True,
        "replicaCount": _replicas(high_availability),
        "leaderElect": high_availability,
        "serviceAccount": {"create": True, "name": EXTERNAL_SECRETS_SERVICE_ACCOUNT},
        "webhook": {"replicaCount": _replicas(high_availability)},
        "serviceMonitor": {"enabled": True},
    }


def metrics_server_values(*, high_availability: bool, local_cluster: bool) -> dict[str, Any]:
    """metrics-server (the HPA's resource metrics)."""
    values: dict[str, Any] = {
        "replicas": _replicas(high_availability),
        "podDisruptionBudget": {"enabled": high_availability, "minAvailable": 1},
    }
    if local_cluster:
        # kind/k3d kubelets serve self-signed certificates that metrics-server cannot verify.
        values["args"] = ["--kubelet-insecure-tls"]
    return values


def keda_values(*, high_availability: bool) -> dict[str, Any]:
    """KEDA: scales the consumers on Kafka consumer-group lag.

    The operator's ServiceAccount name is pinned for its Pod Identity association: on MSK the
    Kafka scaler authenticates with IAM (TriggerAuthentication `podIdentity.provider: aws`).
    """
    return {
        "operator": {"replicaCount": _replicas(high_availability)},
        "serviceAccount": {"operator": {"create": True, "name": KEDA_OPERATOR_SERVICE_ACCOUNT}},
        "prometheus": {
            "operator": {"enabled": True, "serviceMonitor": {"enabled": True}},
            "metricServer": {"enabled": True, "serviceMonitor": {"enabled": True}},
        },
    }


def strimzi_values() -> dict[str, Any]:
    """Strimzi operator: watches only its own namespace, where the Kafka CR lives."""
    return {"watchAnyNamespace": False, "replicas": 1}


def cloudnative_pg_values() -> dict[str, Any]:
    """CloudNativePG operator (watches all namespaces; the Cluster CR lives in `database`)."""
    return {"crds": {"create": True}, "replicaCount": 1}
