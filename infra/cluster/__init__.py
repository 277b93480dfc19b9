"""The Kubernetes cluster layer: EKS on AWS, or an existing cluster from a kubeconfig (local)."""

from infra.cluster.eks import EksCluster, EksClusterArgs
from infra.cluster.kubeconfig import KubeconfigCluster, KubeconfigClusterArgs

__all__ = ["EksCluster", "EksClusterArgs", "KubeconfigCluster", "KubeconfigClusterArgs"]
