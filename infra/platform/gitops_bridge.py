"""The GitOps bridge: the AppProjects and the root Application that points Argo CD at
`gitops/<env>`, so the apps appear after `pulumi up` without any manual step.

Two AppProjects (and Argo CD's `default`, locked), because the root app and its children deploy
different things:

- `platform-root` (root app only): may deploy nothing but `argoproj.io/Application` objects, and
  only into the `argocd` namespace, where the renderer puts the child Applications.
- `platform-apps` (`contracts.ARGOCD_PROJECT`, every child Application): sources from this repo
  only, destination the `apps` namespace only, and no cluster-scoped resources at all: the
  namespace, CRDs and RBAC for controllers are Pulumi's job, so the apps never need any.

A single project cannot express both: the root app's destination (`argocd`) must not be open to
the children, and the children's workload kinds must not be open to the root app.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.contracts import (
    APP_NAMESPACE,
    ARGOCD_API_GROUP,
    ARGOCD_API_VERSION,
    ARGOCD_FINALIZER,
    ARGOCD_NAMESPACE,
    ARGOCD_PROJECT,
    ENVIRONMENTS,
    IN_CLUSTER_API_SERVER,
    gitops_path,
)
from infra.platform.kube import CustomResourceKind, KubeChildren
from infra.validation import require_one_of

ROOT_PROJECT = "platform-root"
DEFAULT_PROJECT = "default"
"""Argo CD's built-in project: it allows every source and destination unless locked here."""
ROOT_APP_NAME = "platform-root"

ROOT_SYNC_OPTIONS: tuple[str, ...] = (
    # CRD-backed objects (ServiceMonitor, ScaledObject) can be large; SSA has no annotation limit.
    "ServerSideApply=true",
    # Namespaces are Pulumi's (the facts channel lives in `apps`); Argo CD must not create them.
    "CreateNamespace=false",
    # On deletion, wait for dependents (pods before their ReplicaSets) and prune last, so a sync
    # that replaces an app never leaves a gap.
    "PrunePropagationPolicy=foreground",
    "PruneLast=true",
)


def _one_namespace_project(description: str, repo_url: str, namespace: str) -> dict[str, Any]:
    """An AppProject that reads only this repo and deploys into one namespace of this cluster."""
    return {
        "description": description,
        "sourceRepos": [repo_url],
        "destinations": [{"server": IN_CLUSTER_API_SERVER, "namespace": namespace}],
        # Empty whitelist = no cluster-scoped kinds (Namespace, CRD, ClusterRole, ...).
        "clusterResourceWhitelist": [],
    }


def apps_project_spec(repo_url: str) -> dict[str, Any]:
    """`platform-apps`: this repo, the `apps` namespace, nothing cluster-scoped."""
    return {
        **_one_namespace_project(
            "Bundled apps: sources from this repo, deployed to the apps namespace only",
            repo_url,
            APP_NAMESPACE,
        ),
        # Quotas and limits are the platform's to set, not the apps'.
        "namespaceResourceBlacklist": [
            {"group": "", "kind": "ResourceQuota"},
            {"group": "", "kind": "LimitRange"},
        ],
        "orphanedResources": {"warn": True},
    }


def locked_default_project_spec() -> dict[str, Any]:
    """`default`, locked: no source, no destination, no kind. Argo CD (re)creates this project
    at start with everything allowed, so an Application naming it would escape the scoping of
    `platform-apps`; locked, such an Application can deploy nothing."""
    return {
        "description": "Locked by the platform: use platform-apps",
        "sourceRepos": [],
        "destinations": [],
        "clusterResourceWhitelist": [],
        "namespaceResourceWhitelist": [],
    }


def root_project_spec(repo_url: str) -> dict[str, Any]:
    """`platform-root`: this repo, Application objects in the `argocd` namespace only."""
    return {
        **_one_namespace_project(
            "The root app-of-apps: child Applications only", repo_url, ARGOCD_NAMESPACE
        ),
        "namespaceResourceWhitelist": [{"group": ARGOCD_API_GROUP, "kind": "Application"}],
    }


def root_application_spec(environment: str, repo_url: str, revision: str) -> dict[str, Any]:
    """The root app-of-apps of one environment: `gitops/<env>`, automated, retried."""
    return {
        "project": ROOT_PROJECT,
        "source": {
            "repoURL": repo_url,
            "targetRevision": revision,
            "path": gitops_path(environment),
            # The folder's top level holds only the child Applications (contracts.py).
            "directory": {"recurse": False},
        },
        "destination": {"server": IN_CLUSTER_API_SERVER, "namespace": ARGOCD_NAMESPACE},
        "syncPolicy": {
            "automated": {"prune": True, "selfHeal": True},
            "syncOptions": list(ROOT_SYNC_OPTIONS),
            "retry": {
                "limit": 10,
                "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"},
            },
        },
    }


@dataclass(frozen=True)
class GitOpsBridgeArgs:
    """Inputs of the GitOps bridge.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        environment: the stack; the root app syncs `gitops/<environment>`.
        repo_url: the Git repository Argo CD pulls from (the only allowed source).
        revision: branch, tag or commit to follow.
        argocd_release: the Argo CD release (its CRDs must exist before the projects/app).
        wait_for: everything the synced workloads need first: Pod Identity associations, the
            facts channel, the CRDs of monitoring/KEDA/ESO, tracing, in-cluster data services.
            Pulumi deletes in reverse, so this also makes the root app the FIRST thing destroyed.
    """

    k8s_provider: pulumi.ProviderResource
    environment: str
    repo_url: str
    revision: str
    argocd_release: pulumi.Resource
    wait_for: Sequence[pulumi.Resource] = ()


class GitOpsBridge(pulumi.ComponentResource):
    """The two AppProjects and the root Application."""

    apps_project: k8s.apiextensions.CustomResource
    root_project: k8s.apiextensions.CustomResource
    default_project: k8s.apiextensions.CustomResource
    root_app: k8s.apiextensions.CustomResource
    path: str

    def __init__(
        self, name: str, args: GitOpsBridgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        require_one_of("environment", args.environment, ENVIRONMENTS)
        if not args.repo_url or not args.revision:
            raise ValueError(
                f"repo_url/revision: {args.repo_url!r}/{args.revision!r}; allowed: non-empty"
            )
        super().__init__("platform:platform:GitOpsBridge", name, None, opts)
        self._args = args
        self._kube = KubeChildren(self, args.k8s_provider)
        self.path = gitops_path(args.environment)
        self.apps_project = self._argocd_object(
            f"{name}-apps-project", "AppProject", ARGOCD_PROJECT, apps_project_spec(args.repo_url)
        )
        self.root_project = self._argocd_object(
            f"{name}-root-project", "AppProject", ROOT_PROJECT, root_project_spec(args.repo_url)
        )
        # Argo CD created `default` already: server-side apply with force takes its fields over
        # (`pulumi.com/patchForce`), and deleting the stack leaves Argo CD to recreate its own.
        self.default_project = self._argocd_object(
            f"{name}-default-project",
            "AppProject",
            DEFAULT_PROJECT,
            locked_default_project_spec(),
            annotations={"pulumi.com/patchForce": "true"},
        )
        self.root_app = self._argocd_object(
            f"{name}-root-app",
            "Application",
            ROOT_APP_NAME,
            root_application_spec(args.environment, args.repo_url, args.revision),
            # Deleting the root app makes Argo CD delete the child Applications (which carry the
            # same finalizer, so their workloads go too) before the object disappears; Pulumi
            # waits for that, which is what makes teardown safe.
            finalizers=[ARGOCD_FINALIZER],
            depends_on=[
                self.apps_project,
                self.root_project,
                self.default_project,
                *args.wait_for,
            ],
        )
        self.register_outputs(
            {
                "apps_project": self.apps_project.urn,
                "root_project": self.root_project.urn,
                "default_project": self.default_project.urn,
                "root_app": self.root_app.urn,
                "path": self.path,
            }
        )

    def _argocd_object(
        self,
        resource_name: str,
        kind: str,
        name: str,
        spec: dict[str, Any],
        *,
        finalizers: list[str] | None = None,
        annotations: dict[str, str] | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> k8s.apiextensions.CustomResource:
        """An Argo CD object in the `argocd` namespace, after the release that brings its CRD."""
        args = self._args
        return self._kube.custom_resource(
            resource_name,
            CustomResourceKind(ARGOCD_API_VERSION, kind),
            name=name,
            namespace=ARGOCD_NAMESPACE,
            spec=spec,
            finalizers=finalizers,
            annotations=annotations,
            depends_on=[args.argocd_release, *depends_on],
        )
