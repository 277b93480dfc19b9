"""KubeconfigCluster: the local flavour's cluster (kind/k3d/minikube) reached through a kubeconfig.

The `localstack` stack has no EKS (LocalStack's free edition does not emulate it), so the platform
layer runs on an existing cluster instead. This component declares no AWS resources: only a
Kubernetes provider bound to one kubeconfig context, with the same `provider`/`cluster_name`
surface as `EksCluster` so the platform layer does not care which one it got.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.component import PlatformComponent

COMPONENT_TYPE = "platform:cluster:KubeconfigCluster"

# kubeconfig context names are free-form, but whitespace or control characters always mean a typo.
_CONTEXT = re.compile(r"^[^\s]{1,253}$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class KubeconfigClusterArgs:
    """Inputs of `KubeconfigCluster`.

    Fields:
        context: kubeconfig context to use (e.g. `kind-platform`). The kubeconfig file itself is
            found the usual way (`KUBECONFIG`, else `~/.kube/config`) by the provider at run time,
            so no machine path ends up in the stack state.
        cluster_name: the name the platform layer uses for this cluster (labels, dashboards).
    """

    context: str
    cluster_name: str

    def validate(self) -> None:
        """Raise ValueError naming the field, the bad value and what is allowed."""
        if not _CONTEXT.fullmatch(self.context):
            raise ValueError(
                f"context: {self.context!r}; allowed: a kubeconfig context name without whitespace"
            )
        if not _CLUSTER_NAME.fullmatch(self.cluster_name):
            raise ValueError(
                f"cluster_name: {self.cluster_name!r}; allowed: 1-100 letters, digits, '.', '-' or "
                "'_', starting with a letter or digit"
            )


class KubeconfigCluster(PlatformComponent[KubeconfigClusterArgs]):
    """A Kubernetes provider for an existing cluster selected by kubeconfig context."""

    TYPE_TOKEN = COMPONENT_TYPE

    cluster_name: pulumi.Output[str]
    provider: k8s.Provider

    def declare(self, name: str, args: KubeconfigClusterArgs) -> dict[str, Any]:
        self.cluster_name = pulumi.Output.from_input(args.cluster_name)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            context=args.context,
            enable_server_side_apply=True,
            opts=self.child,
        )
        # The provider is recorded by URN, as in EksCluster (see the note there).
        return {"cluster_name": self.cluster_name, "provider": self.provider.urn}
