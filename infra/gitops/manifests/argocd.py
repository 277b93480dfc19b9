"""The child ArgoCD Applications at the top of `gitops/<env>/` (the root app syncs only these)."""

from __future__ import annotations

from infra.contracts import (
    APP_NAMESPACE,
    ARGOCD_API_VERSION,
    ARGOCD_PROJECT,
    IN_CLUSTER_API_SERVER,
    gitops_path,
)
from infra.gitops.manifests.common import EnvContext, Manifest, argocd_metadata


def application(name: str, ctx: EnvContext, wave: int, *, autoscaled: bool = False) -> Manifest:
    """One child Application syncing `gitops/<env>/<name>/` into the apps namespace."""
    spec: Manifest = {
        "project": ARGOCD_PROJECT,
        "source": {
            "repoURL": ctx.cfg.gitops.repo_url,
            "targetRevision": ctx.cfg.gitops.target_revision,
            "path": f"{gitops_path(ctx.env)}/{name}",
            "directory": {"recurse": False},
        },
        "destination": {"server": IN_CLUSTER_API_SERVER, "namespace": APP_NAMESPACE},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True},
            "syncOptions": [
                "ServerSideApply=true",
                "RespectIgnoreDifferences=true",
                "PruneLast=true",
                # The platform layer owns the namespace (and its facts ConfigMap and Secret).
                "CreateNamespace=false",
            ],
            "retry": {
                "limit": 5,
                "backoff": {"duration": "10s", "factor": 2, "maxDuration": "3m"},
            },
        },
    }
    if autoscaled:
        # The HPA / KEDA owns the replica count; self-heal must not reset it to the rendered one.
        spec["ignoreDifferences"] = [
            {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
        ]
    return {
        "apiVersion": ARGOCD_API_VERSION,
        "kind": "Application",
        "metadata": argocd_metadata(name, wave),
        "spec": spec,
    }
