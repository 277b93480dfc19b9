"""Labels, metadata and per-env facts shared by every builder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config import PlatformConfig
from infra.contracts import (
    APP_NAMESPACE,
    ARGOCD_FINALIZER,
    ARGOCD_NAMESPACE,
    DB_ROLES_SERVICE_ACCOUNT,
    KAFKA_PLAINTEXT_PORT,
    MSK_IAM_PORT,
    OTLP_HTTP_PORT,
    TOPICS_JOB_SERVICE_ACCOUNT,
    db_credentials_secret_id,
)
from infra.platform.charts import INGRESS_CLASS

Manifest = dict[str, Any]

PART_OF = "event-platform"
MANAGED_BY = "platform-gitops"
# ArgoCD tracks its resources with the `app.kubernetes.io/instance` label by default, so the
# renderer never sets that label itself.
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
WORKLOAD_COMPONENT = "workload"
MIGRATION_COMPONENT = "migration"
ARCHIVE_COMPONENT = "archive"
TOPICS_JOB_NAME = TOPICS_JOB_SERVICE_ACCOUNT
DB_ROLES_JOB_NAME = DB_ROLES_SERVICE_ACCOUNT
"""Job, ServiceAccount and ArgoCD Application of the apps' database roles (RDS only)."""
"""Job, ServiceAccount and ArgoCD Application that create the Kafka topics."""

SYNC_WAVE = "argocd.argoproj.io/sync-wave"
HTTPS_PORT = 443
RUN_AS_ID = 10001
"""Non-root UID/GID >= 10000 so it cannot collide with a host user."""


@dataclass(frozen=True)
class EnvContext:
    """What the builders need to know about one environment (all from the stack config)."""

    cfg: PlatformConfig

    @property
    def env(self) -> str:
        return self.cfg.stack

    @property
    def msk(self) -> bool:
        return self.cfg.kafka.mode == "msk"

    @property
    def eks(self) -> bool:
        return self.cfg.cluster.mode == "eks"

    @property
    def kafka_port(self) -> int:
        """MSK with IAM auth listens on 9098; the in-cluster broker serves plaintext on 9092."""
        return MSK_IAM_PORT if self.msk else KAFKA_PLAINTEXT_PORT

    @property
    def otlp_port(self) -> int:
        return OTLP_HTTP_PORT

    @property
    def high_availability(self) -> bool:
        """The stack's tier: without it (dev, localstack) availability is traded for cost."""
        return self.cfg.tier.high_availability

    @property
    def own_db_logins(self) -> bool:
        """On RDS each app has its own login (db-roles Job + Secrets Manager)."""
        return self.cfg.database.mode == "rds"

    def db_credentials_secret(self, app: str) -> str | None:
        return db_credentials_secret_id(self.cfg.name_prefix, app) if self.own_db_logins else None

    @property
    def ingress_class(self) -> str:
        return INGRESS_CLASS if self.eks else "nginx"


def labels(app: str, component: str = WORKLOAD_COMPONENT) -> dict[str, str]:
    return {
        NAME_LABEL: app,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(app: str, component: str = WORKLOAD_COMPONENT) -> dict[str, str]:
    """Pods of one app's Deployment (migration Job pods carry another component)."""
    return {NAME_LABEL: app, COMPONENT_LABEL: component}


def metadata(
    name: str,
    app: str,
    *,
    component: str = WORKLOAD_COMPONENT,
    wave: int | None = None,
    annotations: dict[str, str] | None = None,
    extra_labels: dict[str, str] | None = None,
    namespace: str = APP_NAMESPACE,
) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": namespace,
        "labels": {**labels(app, component), **(extra_labels or {})},
    }
    notes = dict(annotations or {})
    if wave is not None:
        notes[SYNC_WAVE] = str(wave)
    if notes:
        meta["annotations"] = notes
    return meta


def app_object(api_version: str, kind: str, app: str, wave: int, spec: Manifest) -> Manifest:
    """One object of an app: named and labelled after it, in the apps namespace, synced in
    `wave`."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": metadata(app, app, wave=wave),
        "spec": spec,
    }


def argocd_metadata(name: str, wave: int) -> Manifest:
    return {
        "name": name,
        "namespace": ARGOCD_NAMESPACE,
        "labels": {
            "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": MANAGED_BY,
        },
        "annotations": {SYNC_WAVE: str(wave)},
        # Deleting the Application deletes what it deployed (no orphans after an app is removed).
        "finalizers": [ARGOCD_FINALIZER],
    }
