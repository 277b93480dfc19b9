"""The cluster's add-ons keep the properties issue 13 asked for: Pod Identity trust scoped to
this account and cluster, NetworkPolicies enforced, encrypted default volumes, HTTPS-only ingress.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import rule
from infra.policies.model import RuleContext
from infra.policies.values import as_list, get, parse_json_object, statements

IAM_ROLE = "aws:iam/role:Role"
EKS_ADDON = "aws:eks/addon:Addon"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
INGRESS_CLASS_PARAMS = "kubernetes:elbv2.k8s.aws/v1beta1:IngressClassParams"
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
EBS_CSI = "ebs.csi.aws.com"


def _trusts_pod_identity(statement: Mapping[str, Any]) -> bool:
    principal = statement.get("Principal")
    services = as_list(get(principal, "Service")) if isinstance(principal, Mapping) else []
    return POD_IDENTITY_PRINCIPAL in services


@rule(
    "pod-identity-trust-scoped",
    "Roles trusted by EKS Pod Identity name the source account and the cluster in conditions.",
    types=[IAM_ROLE],
)
def pod_identity_trust_scoped(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    document = parse_json_object(inputs.get("assumeRolePolicy"))
    if document is None:
        return
    for index, statement in enumerate(statements(document)):
        if statement.get("Effect") != "Allow" or not _trusts_pod_identity(statement):
            continue
        condition = json.dumps(statement.get("Condition") or {})
        sid = statement.get("Sid") or f"#{index}"
        for key in ("aws:SourceAccount", "aws:SourceArn"):
            if key not in condition:
                yield f"trust statement {sid} has no {key} condition; any cluster could use it"


@rule(
    "vpc-cni-network-policy",
    "The vpc-cni add-on enforces NetworkPolicies (enableNetworkPolicy).",
    types=[EKS_ADDON],
)
def vpc_cni_network_policy(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if inputs.get("addonName") != "vpc-cni":
        return
    settings = parse_json_object(inputs.get("configurationValues")) or {}
    if str(settings.get("enableNetworkPolicy")).lower() != "true":
        yield "enableNetworkPolicy is not 'true': rendered NetworkPolicies would not be enforced"


@rule(
    "storage-class-encrypted",
    "EBS StorageClasses encrypt with a customer key and bind at the first consumer.",
    types=[STORAGE_CLASS],
)
def storage_class_encrypted(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    if inputs.get("provisioner") != EBS_CSI:
        return
    parameters = inputs.get("parameters") or {}
    if str(get(parameters, "encrypted")).lower() != "true":
        yield "parameters.encrypted is not 'true'"
    if not get(parameters, "kmsKeyId"):
        yield "parameters.kmsKeyId is not set (the AWS-managed key would be used)"
    if inputs.get("volumeBindingMode") != "WaitForFirstConsumer":
        yield "volumeBindingMode is not WaitForFirstConsumer (volumes could land in another AZ)"


@rule(
    "ingress-class-https-only",
    "The load balancer IngressClassParams fix a certificate, a TLS policy and client CIDRs.",
    types=[INGRESS_CLASS_PARAMS],
)
def ingress_class_https_only(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    spec = inputs.get("spec") or {}
    if not as_list(get(spec, "certificateArn")):
        yield "spec.certificateArn is empty: listeners could be plain HTTP"
    if not get(spec, "sslPolicy"):
        yield "spec.sslPolicy is not set"
    if not as_list(get(spec, "inboundCIDRs")):
        yield "spec.inboundCIDRs is empty: the load balancer would admit any client"
