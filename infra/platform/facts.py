"""The facts channel: how values only `pulumi up` knows reach the apps.

ONE channel, named in `infra.contracts`: in the `apps` namespace, the ConfigMap `platform-facts`
carries every `Fact` key and the Secret `platform-db` carries the `DbSecretKey` keys. Workloads
rendered into `gitops/` mount both with `envFrom`, so each key is also the app's environment
variable. Nothing here is ever copied into `gitops/`.

`platform-db` is not written by Pulumi (the password must not pass through Pulumi state): an
ExternalSecret makes External Secrets copy it from the RDS-managed secret in Secrets Manager
(JSON keys `username`/`password`) or, in the local flavour, from the CloudNativePG app secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.contracts import (
    APP_NAMESPACE,
    FACTS_CONFIGMAP,
    FACTS_DB_SECRET,
    KAFKA_AUTH_MODES,
    DbSecretKey,
    Fact,
    app_environment,
)
from infra.platform.external_secrets import EXTERNAL_SECRET
from infra.platform.kube import MANAGED_BY_LABELS, KubeChildren
from infra.validation import require_one_of

# How often External Secrets re-reads the source; RDS rotates the managed secret every 7 days,
# and the apps' DB pool reconnects with the new password on its next connection.
DB_SECRET_REFRESH = "1h"

# Source secret JSON keys (RDS-managed secret and CNPG app secret use the same names).
SOURCE_KEYS: dict[DbSecretKey, str] = {
    DbSecretKey.USER: "username",
    DbSecretKey.PASSWORD: "password",
}


def db_external_secret_spec(store_name: str, source_key: str) -> dict[str, Any]:
    """The ExternalSecret that creates `platform-db` with `DB_USER`/`DB_PASSWORD`."""
    return {
        "refreshInterval": DB_SECRET_REFRESH,
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": store_name},
        "target": {"name": FACTS_DB_SECRET, "creationPolicy": "Owner", "deletionPolicy": "Delete"},
        "data": [
            {
                "secretKey": key.value,
                "remoteRef": {"key": source_key, "property": SOURCE_KEYS[key]},
            }
            for key in DbSecretKey
        ],
    }


@dataclass(frozen=True)
class FactsChannelArgs:
    """Inputs of the facts channel.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        environment: the stack name (`PLATFORM_ENVIRONMENT`).
        region: the AWS region (`AWS_REGION`).
        kafka_bootstrap_servers: broker list the apps connect to.
        kafka_auth_mode: `iam` (MSK, SASL_SSL + AWS_MSK_IAM) or `plaintext` (in-cluster).
        db_host / db_port / db_name: the PostgreSQL endpoint and database.
        db_secret_ref: ARN of the RDS-managed secret, or the CNPG app secret's name; also the
            ExternalSecret's source key.
        db_sslmode: libpq's sslmode for the apps (`verify-full` on RDS).
        sync_db_secret: create `platform-db` from `db_secret_ref` (local flavour only: on AWS
            each app reads its own credentials secret, and nothing copies the master secret).
        otlp_endpoint: the OTLP/HTTP endpoint of the tracing collector.
        audit_bucket_name: the audit archive bucket.
        secret_store_name: the ClusterSecretStore that can read `db_secret_ref`.
        wait_for: what the ExternalSecret waits for (the store, which waits for ESO's CRDs).
    """

    k8s_provider: pulumi.ProviderResource
    environment: str
    region: str
    kafka_bootstrap_servers: pulumi.Input[str]
    kafka_auth_mode: str
    db_host: pulumi.Input[str]
    db_port: pulumi.Input[int]
    db_name: pulumi.Input[str]
    db_secret_ref: pulumi.Input[str]
    otlp_endpoint: str
    audit_bucket_name: pulumi.Input[str]
    secret_store_name: str
    wait_for: Sequence[pulumi.Resource] = ()
    db_sslmode: str = "verify-full"
    sync_db_secret: bool = True


class FactsChannel(pulumi.ComponentResource):
    """The `apps` namespace, the `platform-facts` ConfigMap and the `platform-db` ExternalSecret."""

    namespace: k8s.core.v1.Namespace
    config_map: k8s.core.v1.ConfigMap
    db_secret: k8s.apiextensions.CustomResource | None
    data: dict[str, pulumi.Input[str]]

    def __init__(
        self, name: str, args: FactsChannelArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        require_one_of("kafka_auth_mode", args.kafka_auth_mode, KAFKA_AUTH_MODES)
        if not args.wait_for:
            raise ValueError("wait_for: empty; allowed: the ClusterSecretStore (ESO CRDs first)")
        # The ConfigMap data: one entry per Fact (`app_environment` refuses a missing one).
        self.data = app_environment(
            {
                Fact.ENVIRONMENT: args.environment,
                Fact.AWS_REGION: args.region,
                Fact.KAFKA_BOOTSTRAP_SERVERS: args.kafka_bootstrap_servers,
                Fact.KAFKA_AUTH_MODE: args.kafka_auth_mode,
                Fact.DB_HOST: args.db_host,
                Fact.DB_PORT: pulumi.Output.from_input(args.db_port).apply(str),
                Fact.DB_NAME: args.db_name,
                Fact.DB_SECRET_REF: args.db_secret_ref,
                Fact.DB_SSLMODE: args.db_sslmode,
                Fact.OTEL_EXPORTER_OTLP_ENDPOINT: args.otlp_endpoint,
                Fact.AUDIT_ARCHIVE_BUCKET: args.audit_bucket_name,
            }
        )
        super().__init__("platform:platform:FactsChannel", name, None, opts)
        kube = KubeChildren(self, args.k8s_provider)
        self.namespace = kube.namespace(f"{name}-apps-namespace", APP_NAMESPACE)
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config-map",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=FACTS_CONFIGMAP, namespace=APP_NAMESPACE, labels=MANAGED_BY_LABELS
            ),
            data=self.data,
            opts=kube.opts([self.namespace]),
        )
        self.db_secret: k8s.apiextensions.CustomResource | None = None
        if args.sync_db_secret:
            self.db_secret = kube.custom_resource(
                f"{name}-db-external-secret",
                EXTERNAL_SECRET,
                name=FACTS_DB_SECRET,
                namespace=APP_NAMESPACE,
                spec=pulumi.Output.from_input(args.db_secret_ref).apply(
                    lambda ref: db_external_secret_spec(args.secret_store_name, ref)
                ),
                depends_on=[self.namespace, *args.wait_for],
            )
        self.register_outputs(
            {
                "namespace": self.namespace.metadata,
                "config_map": self.config_map.metadata,
                "db_secret": self.db_secret.urn if self.db_secret else None,
                "data": self.data,
            }
        )
