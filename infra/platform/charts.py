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
from collections.abc import Sequence
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
    LOGGING_NAMESPACE,
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
LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT = "aws-load-balancer-controller"
EXTERNAL_DNS_SERVICE_ACCOUNT = "external-dns"
CLUSTER_AUTOSCALER_SERVICE_ACCOUNT = "cluster-autoscaler"
FLUENT_BIT_SERVICE_ACCOUNT = "fluent-bit"

INGRESS_CLASS = "alb"
"""The IngressClass the platform declares for the AWS Load Balancer Controller (EKS)."""
STORAGE_CLASS = "gp3-encrypted"
"""The default StorageClass on EKS: gp3, encrypted with the EBS customer key."""
ALERTMANAGER_RECEIVERS_SECRET = "alertmanager-receivers"
"""Secret (monitoring namespace, synced by External Secrets) with one key per receiver."""
ALERTMANAGER_SECRETS_DIR = "/etc/alertmanager/secrets"
"""Where the operator mounts `alertmanagerSpec.secrets` (one directory per Secret)."""

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

AWS_LOAD_BALANCER_CONTROLLER = ChartSpec(
    release="aws-load-balancer-controller",
    chart="aws-load-balancer-controller",
    repository="https://aws.github.io/eks-charts",
    version="1.13.4",  # controller v2.13.4 (its docs/install/iam_policy.json: iam_policies.py)
    namespace=KUBE_SYSTEM_NAMESPACE,
)
EXTERNAL_DNS = ChartSpec(
    release="external-dns",
    chart="external-dns",
    repository="https://kubernetes-sigs.github.io/external-dns/",
    version="1.18.0",  # external-dns v0.18.0
    namespace=KUBE_SYSTEM_NAMESPACE,
)
CLUSTER_AUTOSCALER = ChartSpec(
    release="cluster-autoscaler",
    chart="cluster-autoscaler",
    repository="https://kubernetes.github.io/autoscaler",
    version="9.46.6",  # app 1.32.0; the image tag follows the cluster's minor (below)
    namespace=KUBE_SYSTEM_NAMESPACE,
)
FLUENT_BIT = ChartSpec(
    release="fluent-bit",
    chart="fluent-bit",
    repository="https://fluent.github.io/helm-charts",
    version="0.58.1",  # Fluent Bit 5.1
    namespace=LOGGING_NAMESPACE,
)

# cluster-autoscaler must match the Kubernetes minor it runs against (its compatibility table).
CLUSTER_AUTOSCALER_IMAGE_TAGS: dict[str, str] = {
    "1.31": "v1.31.0",
    "1.32": "v1.32.0",
    "1.33": "v1.33.0",
}

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
    AWS_LOAD_BALANCER_CONTROLLER,
    EXTERNAL_DNS,
    CLUSTER_AUTOSCALER,
    FLUENT_BIT,
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
    LOGGING_NAMESPACE,
)


@dataclass(frozen=True)
class AlertReceiver:
    """One Alertmanager receiver (from `observability.alertReceivers` in the stack config).

    Its credential (Slack webhook URL, PagerDuty routing key) is the key `name` of the
    `alertmanager-receivers` Secret, which External Secrets syncs; Alertmanager reads it from the
    mounted file (`*_file` settings), so it never appears in the chart values or Pulumi state.
    """

    name: str
    kind: str
    severities: tuple[str, ...]
    slack_channel: str | None = None

    def credential_file(self) -> str:
        return f"{ALERTMANAGER_SECRETS_DIR}/{ALERTMANAGER_RECEIVERS_SECRET}/{self.name}"


NULL_RECEIVER = "null"
ALERT_GROUP_BY = ("alertname", "namespace", "app")


def _receiver_config(receiver: AlertReceiver) -> dict[str, Any]:
    if receiver.kind == "slack":
        return {
            "name": receiver.name,
            "slack_configs": [
                {
                    "api_url_file": receiver.credential_file(),
                    "channel": receiver.slack_channel,
                    "send_resolved": True,
                    "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}",
                    "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
                }
            ],
        }
    if receiver.kind == "pagerduty":
        return {
            "name": receiver.name,
            "pagerduty_configs": [
                {"routing_key_file": receiver.credential_file(), "send_resolved": True}
            ],
        }
    raise ValueError(
        f"receiver {receiver.name!r}: kind {receiver.kind!r}; allowed: slack, pagerduty"
    )


def alertmanager_config(receivers: Sequence[AlertReceiver]) -> dict[str, Any]:
    """Routes by `severity` label to the configured receivers; everything else to `null`.

    One route per (severity, receiver) with `continue: true`, so a critical alert reaches both
    PagerDuty and Slack when both list `critical`. The Watchdog alert (always firing, by design)
    goes nowhere.
    """
    routes: list[dict[str, Any]] = [
        {"matchers": ['alertname = "Watchdog"'], "receiver": NULL_RECEIVER}
    ]
    for receiver in receivers:
        for severity in receiver.severities:
            routes.append(
                {
                    "matchers": [f'severity = "{severity}"'],
                    "receiver": receiver.name,
                    "continue": True,
                }
            )
    return {
        "route": {
            "receiver": NULL_RECEIVER,
            "group_by": list(ALERT_GROUP_BY),
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": [{"name": NULL_RECEIVER}, *(_receiver_config(r) for r in receivers)],
    }


def _claim(storage_class: str | None, size: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return spec


def kube_prometheus_stack_values(
    *,
    high_availability: bool,
    retention: str,
    storage_gib: int,
    storage_class: str | None = None,
    receivers: Sequence[AlertReceiver] = (),
) -> dict[str, Any]:
    """kube-prometheus-stack with the tier's retention/storage and app-friendly selectors.

    Every volume (Prometheus, Alertmanager, Grafana) names `storage_class` (EKS: the encrypted
    gp3 class); None leaves the cluster default (kind/k3d).
    """
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
            "config": alertmanager_config(receivers),
            "alertmanagerSpec": {
                "replicas": _replicas(high_availability, 3),
                "storage": {"volumeClaimTemplate": {"spec": _claim(storage_class, "2Gi")}},
                # Mounted at /etc/alertmanager/secrets/<secret>/<key>: the `*_file` settings.
                "secrets": [ALERTMANAGER_RECEIVERS_SECRET] if receivers else [],
            },
        },
        "grafana": {
            "enabled": True,
            "persistence": {
                "enabled": True,
                "type": "pvc",
                "size": "10Gi",
                **({"storageClassName": storage_class} if storage_class else {}),
            },
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
                    "volumeClaimTemplate": {"spec": _claim(storage_class, f"{storage_gib}Gi")}
                },
            }
        },
    }


JAEGER_BADGER_PVC = "jaeger-badger"
JAEGER_BADGER_DIR = "/mnt/data"
JAEGER_TRACE_TTL = "168h"


def jaeger_user_config(*, persistent: bool) -> dict[str, Any]:
    """Jaeger v2's own config: OTLP in from the collector, one store (badger on disk, or memory)."""
    store: dict[str, Any]
    if persistent:
        store = {
            "badger": {
                "directories": {
                    "keys": f"{JAEGER_BADGER_DIR}/keys",
                    "values": f"{JAEGER_BADGER_DIR}/values",
                },
                "ephemeral": False,
                "ttl": {"spans": JAEGER_TRACE_TTL},
            }
        }
    else:
        store = {"memory": {"max_traces": 100000}}
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
        },
        "extensions": {
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": "0.0.0.0:13133"}},
            "jaeger_query": {"storage": {"traces": "primary_store"}},
            "jaeger_storage": {"backends": {"primary_store": store}},
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "0.0.0.0:4317"}}}},
        "processors": {"batch": {}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "primary_store"}},
    }


def jaeger_values(*, persistent: bool = False) -> dict[str, Any]:
    """Jaeger v2 all-in-one behind the collector; it only receives OTLP from the collector.

    Chart 4.x has no top-level `agent`/`collector`/`query` (Jaeger v2 is one binary), so none is
    set. Where the tier keeps traces (`observability.traceStorageGib`), they go to badger on a
    PVC the platform declares (`JAEGER_BADGER_PVC`, the encrypted default StorageClass); else
    they stay in memory, a debugging aid lost with the pod.
    """
    values: dict[str, Any] = {
        "fullnameOverride": JAEGER_NAME,
        "provisionDataStore": {"cassandra": False, "elasticsearch": False},
        "allInOne": {"enabled": True},
        "userconfig": jaeger_user_config(persistent=persistent),
    }
    if persistent:
        values["storage"] = {
            "type": "badger",
            "badger": {
                "ephemeral": False,
                "persistence": {
                    "mountPath": JAEGER_BADGER_DIR,
                    "useExistingPvcName": JAEGER_BADGER_PVC,
                },
            },
        }
    else:
        values["storage"] = {"type": "memory"}
    return values


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


# --- Add-ons of the EKS flavour: ingress, DNS, node autoscaling, log shipping ------------------

TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 only, the controller's recommended modern policy."""


def load_balancer_controller_values(
    *, cluster_name: str, region: str, vpc_id: str, high_availability: bool
) -> dict[str, Any]:
    """AWS Load Balancer Controller: the platform declares the IngressClass itself (with its
    IngressClassParams), so the chart's own is off; the Service mutator webhook is off too
    (no Service of type LoadBalancer is expected, and it would capture every such Service)."""
    return {
        "clusterName": cluster_name,
        "region": region,
        # Set explicitly: with IMDS hop limit 1, the controller cannot discover the VPC itself.
        "vpcId": vpc_id,
        "replicaCount": _replicas(high_availability),
        "serviceAccount": {"create": True, "name": LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT},
        "createIngressClassResource": False,
        "enableServiceMutatorWebhook": False,
        "defaultTargetType": "ip",
        "defaultSSLPolicy": TLS_POLICY,
        # Only what the policy grants: no WAF, WAFv2 or Shield calls.
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        "defaultTags": {"managed-by": "aws-load-balancer-controller", "cluster": cluster_name},
        "serviceMonitor": {"enabled": True},
    }


def external_dns_values(*, cluster_name: str, zone_name: str, zone_id: str) -> dict[str, Any]:
    """external-dns: Ingress host names into the one Route 53 zone of the stack.

    `policy: sync` deletes the records it created when the Ingress goes (teardown leaves no
    dangling name); the TXT registry with this cluster's owner id keeps it off records it did not
    create.
    """
    return {
        "provider": {"name": "aws"},
        "serviceAccount": {"create": True, "name": EXTERNAL_DNS_SERVICE_ACCOUNT},
        "sources": ["ingress"],
        "domainFilters": [zone_name],
        "extraArgs": [f"--zone-id-filter={zone_id}", "--aws-zone-type=public"],
        "policy": "sync",
        "registry": "txt",
        "txtOwnerId": cluster_name,
        "logFormat": "json",
        "serviceMonitor": {"enabled": True},
    }


def cluster_autoscaler_values(
    *,
    cluster_name: str,
    region: str,
    kubernetes_version: str,
    max_nodes_total: int,
    scale_down_utilization_threshold: float,
    scale_down_unneeded_minutes: int,
) -> dict[str, Any]:
    """cluster-autoscaler on the managed node groups (found by the tags EKS puts on their ASGs).

    Its limits: each group's min/max from the stack config, and `max-nodes-total` over all.
    """
    tag = CLUSTER_AUTOSCALER_IMAGE_TAGS.get(kubernetes_version)
    if tag is None:
        raise ValueError(
            f"kubernetes_version {kubernetes_version!r}; allowed: "
            f"{', '.join(CLUSTER_AUTOSCALER_IMAGE_TAGS)}"
        )
    return {
        "cloudProvider": "aws",
        "awsRegion": region,
        "autoDiscovery": {"clusterName": cluster_name},
        "image": {"tag": tag},
        "rbac": {"serviceAccount": {"create": True, "name": CLUSTER_AUTOSCALER_SERVICE_ACCOUNT}},
        "extraArgs": {
            "balance-similar-node-groups": True,
            "expander": "least-waste",
            "skip-nodes-with-system-pods": False,
            "max-nodes-total": max_nodes_total,
            "scale-down-utilization-threshold": scale_down_utilization_threshold,
            "scale-down-unneeded-time": f"{scale_down_unneeded_minutes}m",
        },
        "serviceMonitor": {"enabled": True, "namespace": KUBE_SYSTEM_NAMESPACE},
    }


FLUENT_BIT_CONTAINER_LOGS = "/var/log/containers/*.log"
# One stream per container: <namespace>.<pod>.<container> (record accessors of the kubernetes
# filter's metadata).
FLUENT_BIT_STREAM = ".".join(
    f"$kubernetes['{key}']" for key in ("namespace_name", "pod_name", "container_name")
)


def fluent_bit_values(*, region: str, log_group_name: str) -> dict[str, Any]:
    """Fluent Bit (DaemonSet): every container's stdout, parsed as JSON where it is JSON (the
    apps log JSON lines), enriched with pod metadata, to one CloudWatch log group per stack.

    The group is Pulumi's (KMS key and retention from config); Fluent Bit never creates one.
    """
    inputs = f"""[INPUT]
    Name              tail
    Path              {FLUENT_BIT_CONTAINER_LOGS}
    multiline.parser  cri
    Tag               kube.*
    Mem_Buf_Limit     16MB
    Skip_Long_Lines   On
    DB                /var/fluent-bit/state/tail.db
"""
    filters = """[FILTER]
    Name                kubernetes
    Match               kube.*
    Merge_Log           On
    Keep_Log            Off
    Labels              On
    Annotations         Off
    K8S-Logging.Exclude On
"""
    outputs = f"""[OUTPUT]
    Name                cloudwatch_logs
    Match               kube.*
    region              {region}
    log_group_name      {log_group_name}
    log_stream_template {FLUENT_BIT_STREAM}
    log_stream_prefix   pod.
    auto_create_group   Off
"""
    return {
        "kind": "DaemonSet",
        "serviceAccount": {"create": True, "name": FLUENT_BIT_SERVICE_ACCOUNT},
        "config": {"inputs": inputs, "filters": filters, "outputs": outputs},
        "serviceMonitor": {"enabled": True},
        "tolerations": [{"operator": "Exists"}],  # every node, tainted or not
        "daemonSetVolumes": [
            {"name": "varlog", "hostPath": {"path": "/var/log"}},
            {"name": "state", "hostPath": {"path": "/var/fluent-bit/state"}},
        ],
        "daemonSetVolumeMounts": [
            {"name": "varlog", "mountPath": "/var/log", "readOnly": True},
            {"name": "state", "mountPath": "/var/fluent-bit/state"},
        ],
    }
