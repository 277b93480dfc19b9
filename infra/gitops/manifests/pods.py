"""Hardened pod templates shared by Deployments and Jobs."""

from __future__ import annotations

from typing import Any

from infra.contracts import FACTS_CONFIGMAP, FACTS_DB_SECRET, NOTIFIER_CHANNELS_SECRET
from infra.gitops.catalog import Resources
from infra.gitops.manifests.common import RUN_AS_ID, Manifest

TMP_VOLUME = "tmp"


def config_map_name(app: str) -> str:
    return f"{app}-config"


def env_from(
    app: str, *, uses_database: bool, channels: bool = False, shared_db_secret: bool = True
) -> list[Manifest]:
    """Facts (platform-facts), the app's own settings, DB credentials and, for the notifier, its
    channel credentials: never copied values.

    `shared_db_secret`: mount `platform-db` (the local flavour's one database login). On AWS each
    app reads its own login from Secrets Manager (`DB_CREDENTIALS_SECRET` in its settings)."""
    sources: list[Manifest] = [
        {"configMapRef": {"name": FACTS_CONFIGMAP}},
        {"configMapRef": {"name": config_map_name(app)}},
    ]
    if uses_database and shared_db_secret:
        sources.append({"secretRef": {"name": FACTS_DB_SECRET}})
    if channels:
        sources.append({"secretRef": {"name": NOTIFIER_CHANNELS_SECRET}})
    return sources


def container_security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": RUN_AS_ID,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> Manifest:
    return {
        "fsGroup": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(res: Resources) -> Manifest:
    return {
        "limits": {"cpu": res.cpu_limit, "memory": res.memory_limit},
        "requests": {"cpu": res.cpu_request, "memory": res.memory_request},
    }


def container(
    name: str,
    image: str,
    command: list[str],
    res: Resources,
    env_sources: list[Manifest],
    **extra: Any,
) -> Manifest:
    return {
        "name": name,
        "image": image,
        # Tags are immutable (see catalog.tag_problem); Always still re-checks the registry so a
        # node never runs an image it cached under another pull secret.
        "imagePullPolicy": "Always",
        "command": command,
        "envFrom": env_sources,
        "resources": resources(res),
        "securityContext": container_security_context(),
        # The root filesystem is read-only; Python and the apps write temporary files here only.
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}],
        **extra,
    }


def pod_spec(service_account: str, containers: list[Manifest], **extra: Any) -> Manifest:
    return {
        "serviceAccountName": service_account,
        # EKS Pod Identity injects its own token volume; the API token is not needed by the apps.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}}],
        **extra,
    }
