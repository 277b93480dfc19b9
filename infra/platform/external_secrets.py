"""External Secrets Operator and the ClusterSecretStore the facts channel reads through.

EKS flavour: the store reads AWS Secrets Manager with the controller's own credentials, which EKS
Pod Identity provides (no `auth` block: the AWS SDK's default chain finds the Pod Identity agent).
The controller's role may read the database secret only (see `iam_policies`).

Local flavour: there is no Secrets Manager with the database password; the store reads the
CloudNativePG app secret from the `database` namespace through the Kubernetes API instead, as a
read-only ServiceAccount there. Either way the apps get the same `platform-db` Secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from infra.contracts import APP_NAMESPACE, IN_CLUSTER_API_SERVER, MONITORING_NAMESPACE
from infra.platform import charts
from infra.platform.chart_component import NamespacedChart
from infra.platform.kube import CustomResourceKind

ESO_API_VERSION = "external-secrets.io/v1"
CLUSTER_SECRET_STORE = CustomResourceKind(ESO_API_VERSION, "ClusterSecretStore", namespaced=False)
EXTERNAL_SECRET = CustomResourceKind(ESO_API_VERSION, "ExternalSecret")
AWS_STORE_NAME = "aws-secrets-manager"
KUBERNETES_STORE_NAME = "in-cluster-database"
StoreKind = Literal["aws-secrets-manager", "kubernetes"]
SECRETS_REFRESH = "1h"


def alertmanager_receivers_secret_id(name_prefix: str) -> str:
    """The Secrets Manager secret (JSON, one property per receiver name) of one environment."""
    return f"{name_prefix}/{charts.ALERTMANAGER_RECEIVERS_SECRET}"


def alertmanager_receivers_spec(secret_id: str, receiver_names: Sequence[str]) -> dict[str, Any]:
    """The ExternalSecret creating `alertmanager-receivers`: one key per receiver, each the
    receiver's credential (Slack webhook URL, PagerDuty routing key) from Secrets Manager."""
    if not receiver_names:
        raise ValueError("receiver_names: empty; allowed: the configured receivers' names")
    return {
        "refreshInterval": SECRETS_REFRESH,
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": AWS_STORE_NAME},
        "target": {
            "name": charts.ALERTMANAGER_RECEIVERS_SECRET,
            "creationPolicy": "Owner",
            "deletionPolicy": "Delete",
        },
        "data": [
            {"secretKey": name, "remoteRef": {"key": secret_id, "property": name}}
            for name in receiver_names
        ],
    }


@dataclass(frozen=True)
class ExternalSecretsArgs:
    """Inputs of External Secrets.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        high_availability: two controller and webhook replicas (prod).
        store: `aws-secrets-manager` (EKS) or `kubernetes` (local flavour, CNPG secret).
        region: AWS region of the Secrets Manager store.
        source_namespace: for the `kubernetes` store: namespace holding the source secret.
        reader_service_account: for the `kubernetes` store: ServiceAccount (in
            `source_namespace`) allowed to read that secret.
        wait_for: what the release waits for: the monitoring CRDs (ServiceMonitor) and, on EKS,
            the controller's Pod Identity association (it must exist before the pod starts).
        store_wait_for: what the store waits for besides the release (the reader's RBAC).
        alertmanager_receivers / alertmanager_secret_id: the receiver names whose credentials
            are synced from that Secrets Manager secret into `alertmanager-receivers` (AWS).
    """

    k8s_provider: pulumi.ProviderResource
    high_availability: bool
    store: StoreKind
    region: str
    source_namespace: str | None = None
    reader_service_account: str | None = None
    wait_for: Sequence[pulumi.Resource] = ()
    store_wait_for: Sequence[pulumi.Resource] = ()
    alertmanager_receivers: tuple[str, ...] = ()
    alertmanager_secret_id: str | None = None


def cluster_secret_store_spec(args: ExternalSecretsArgs) -> dict[str, Any]:
    """The ClusterSecretStore spec (pure, tested directly)."""
    # Only ExternalSecrets in the apps namespace may use the store (and, on AWS, Alertmanager's
    # receiver credentials in the monitoring namespace).
    only_apps = [{"namespaces": [APP_NAMESPACE]}]
    if args.store == "aws-secrets-manager":
        only_apps = [{"namespaces": [APP_NAMESPACE, MONITORING_NAMESPACE]}]
        # No `auth`: the controller's Pod Identity credentials are used.
        return {
            "provider": {"aws": {"service": "SecretsManager", "region": args.region}},
            "conditions": only_apps,
        }
    return {
        "provider": {
            "kubernetes": {
                "remoteNamespace": args.source_namespace,
                "server": {
                    "url": IN_CLUSTER_API_SERVER,
                    "caProvider": {
                        "type": "ConfigMap",
                        "name": "kube-root-ca.crt",
                        "key": "ca.crt",
                        "namespace": args.source_namespace,
                    },
                },
                "auth": {
                    "serviceAccount": {
                        "name": args.reader_service_account,
                        "namespace": args.source_namespace,
                    }
                },
            }
        },
        "conditions": only_apps,
    }


class ExternalSecrets(NamespacedChart):
    """The ESO namespace and release, and one ClusterSecretStore."""

    store: k8s.apiextensions.CustomResource
    store_name: str

    def __init__(
        self, name: str, args: ExternalSecretsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.store not in ("aws-secrets-manager", "kubernetes"):
            raise ValueError(f"store: {args.store!r}; allowed: 'aws-secrets-manager', 'kubernetes'")
        if args.store == "kubernetes" and not (
            args.source_namespace and args.reader_service_account
        ):
            raise ValueError(
                "source_namespace/reader_service_account: missing; allowed: both set for the "
                "'kubernetes' store"
            )
        values = charts.external_secrets_values(high_availability=args.high_availability)
        super().__init__(
            "platform:platform:ExternalSecrets", name, charts.EXTERNAL_SECRETS, values, args, opts
        )
        self.store_name = (
            AWS_STORE_NAME if args.store == "aws-secrets-manager" else KUBERNETES_STORE_NAME
        )
        self.store = self.kube.custom_resource(
            f"{name}-cluster-secret-store",
            CLUSTER_SECRET_STORE,
            name=self.store_name,
            spec=cluster_secret_store_spec(args),
            # The CRD and the validating webhook come with the release.
            depends_on=[self.release, *args.store_wait_for],
        )
        self.alertmanager_secret: k8s.apiextensions.CustomResource | None = None
        if args.alertmanager_receivers:
            if args.store != "aws-secrets-manager" or not args.alertmanager_secret_id:
                raise ValueError(
                    "alertmanager_receivers: set without the aws-secrets-manager store and a "
                    "secret id; allowed: receivers on the aws flavour only"
                )
            self.alertmanager_secret = self.kube.custom_resource(
                f"{name}-alertmanager-receivers",
                EXTERNAL_SECRET,
                name=charts.ALERTMANAGER_RECEIVERS_SECRET,
                namespace=MONITORING_NAMESPACE,
                spec=alertmanager_receivers_spec(
                    args.alertmanager_secret_id, args.alertmanager_receivers
                ),
                depends_on=[self.store],
            )
        self.register_outputs(
            {
                "alertmanager_secret": (
                    self.alertmanager_secret.urn if self.alertmanager_secret else None
                ),
                **self.chart_outputs(),
                "store": self.store.urn,
                "store_name": self.store_name,
            }
        )
