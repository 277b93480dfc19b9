"""The cluster's default StorageClass on EKS: gp3, encrypted with the EBS customer key, bound
where the pod lands (`WaitForFirstConsumer`, so a volume is created in the pod's zone).

Every PVC the platform declares names it (`charts.STORAGE_CLASS`); being the default, a claim
without a class gets it too. The EBS CSI driver's role may use the key (`iam.ebs_kms_policy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra.platform import charts
from infra.platform.kube import MANAGED_BY_LABELS, KubeChildren

EBS_CSI_PROVISIONER = "ebs.csi.aws.com"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


@dataclass(frozen=True)
class StorageArgs:
    """Inputs: the cluster's provider and the EBS customer key's ARN."""

    k8s_provider: pulumi.ProviderResource
    ebs_kms_key_arn: pulumi.Input[str]


def storage_class_parameters(kms_key_arn: str) -> dict[str, str]:
    return {
        "type": "gp3",
        "encrypted": "true",
        "kmsKeyId": kms_key_arn,
        "csi.storage.k8s.io/fstype": "ext4",
    }


class Storage(pulumi.ComponentResource):
    """The `gp3-encrypted` default StorageClass."""

    storage_class: k8s.storage.v1.StorageClass
    name: str

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("platform:platform:Storage", name, None, opts)
        self.name = charts.STORAGE_CLASS
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-gp3-encrypted",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=self.name,
                labels=MANAGED_BY_LABELS,
                annotations={DEFAULT_CLASS_ANNOTATION: "true"},
            ),
            provisioner=EBS_CSI_PROVISIONER,
            parameters=pulumi.Output.from_input(args.ebs_kms_key_arn).apply(
                storage_class_parameters
            ),
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            opts=KubeChildren(self, args.k8s_provider).opts(),
        )
        self.register_outputs({"storage_class": self.storage_class.metadata, "name": self.name})
