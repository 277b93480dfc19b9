"""KubeconfigCluster: the local flavour's cluster (kind/k3d/minikube) reached through a kubeconfig.

The `localstack` stack has no EKS (LocalStack's free edition does not emulate it), so the platform
layer runs on an existing cluster instead. This component declares no AWS resources: only a
Kubernetes provider bound to one kubeconfig context, with the same `provider`/`cluster_name`
surface as `EksCluster` so the platform layer does not care which one it got.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

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


def validate_args(args: KubeconfigClusterArgs) -> None:
    """Raise ValueError naming the field, the bad value and what is allowed."""
    if not _CONTEXT.fullmatch(args.context):
        raise ValueError(
            f"context: {args.context!r}; allowed: a kubeconfig context name without whitespace"
        )
    if not _CLUSTER_NAME.fullmatch(args.cluster_name):
        raise ValueError(
            f"cluster_name: {args.cluster_name!r}; allowed: 1-100 letters, digits, '.', '-' or "
            "'_', starting with a letter or digit"
        )


class KubeconfigCluster(pulumi.ComponentResource):
    """A Kubernetes provider for an existing cluster selected by kubeconfig context."""

    cluster_name: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(
        self, name: str, args: KubeconfigClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate_args(args)
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self.cluster_name = pulumi.Output.from_input(args.cluster_name)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            context=args.context,
            enable_server_side_apply=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The provider is recorded by URN, as in EksCluster (see the note there).
        self.register_outputs({"cluster_name": self.cluster_name, "provider": self.provider.urn})
