"""Ingress on EKS: the AWS Load Balancer Controller, its IngressClass, and external-dns.

The request path: the host name (Route 53, written by external-dns from the Ingress) -> the ALB
(HTTPS only, the stack's ACM certificate, scheme and client CIDRs from the stack config, all
fixed on the IngressClassParams so no Ingress can loosen them) -> the events-api Service -> its
pods (target type `ip`: the ALB sends to pod addresses directly).

Both controllers run with Pod Identity roles (`controller_policies`) whose associations exist
before their pods start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.contracts import APP_NAMESPACE
from infra.platform import charts
from infra.platform.kube import MANAGED_BY_LABELS, CustomResourceKind, KubeChildren
from infra.validation import require_one_of

INGRESS_CLASS_PARAMS = CustomResourceKind(
    "elbv2.k8s.aws/v1beta1", "IngressClassParams", namespaced=False
)
ALB_CONTROLLER = "ingress.k8s.aws/alb"
INGRESS_SCHEMES = ("internal", "internet-facing")


@dataclass(frozen=True)
class IngressArgs:
    """Inputs of the ingress add-ons.

    Attributes:
        k8s_provider: the cluster's Kubernetes provider.
        cluster_name / region / vpc_id: where the controller creates load balancers.
        high_availability: two controller replicas.
        scheme: `internal` or `internet-facing` (`ingress.scheme`).
        allowed_cidrs: client CIDRs the ALB's security group admits (`ingress.allowedCidrs`).
        certificate_arn: the ACM certificate of the listeners (`ingress.certificateArn`).
        zone_name / zone_id: the Route 53 zone external-dns manages (`ingress.zoneName/zoneId`).
        wait_for: the controllers' Pod Identity associations and the monitoring CRDs.
    """

    k8s_provider: pulumi.ProviderResource
    cluster_name: pulumi.Input[str]
    region: str
    vpc_id: pulumi.Input[str]
    high_availability: bool
    scheme: str
    allowed_cidrs: tuple[str, ...]
    certificate_arn: str
    zone_name: str
    zone_id: str
    wait_for: Sequence[pulumi.Resource] = ()


def ingress_class_params_spec(args: IngressArgs) -> dict[str, Any]:
    """What every Ingress of the class gets, whatever its annotations say."""
    return {
        "scheme": args.scheme,
        "targetType": "ip",
        # Only Ingresses in the apps namespace may use the class.
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": APP_NAMESPACE}},
        "ipAddressType": "ipv4",
        "inboundCIDRs": list(args.allowed_cidrs),
        "sslPolicy": charts.TLS_POLICY,
        "certificateArn": [args.certificate_arn],
        # One ALB for the class: a second Ingress joins it instead of adding a load balancer.
        "group": {"name": "platform"},
        "loadBalancerAttributes": [
            {"key": "routing.http.drop_invalid_header_fields.enabled", "value": "true"},
            {"key": "deletion_protection.enabled", "value": "false"},
        ],
    }


def validate_args(args: IngressArgs) -> None:
    require_one_of("scheme", args.scheme, INGRESS_SCHEMES)
    if not args.allowed_cidrs:
        raise ValueError("allowed_cidrs: empty; allowed: one or more client CIDRs")
    if not args.certificate_arn.startswith("arn:aws:acm:"):
        raise ValueError(
            f"certificate_arn: {args.certificate_arn!r}; allowed: an ACM certificate ARN"
        )


class Ingress(pulumi.ComponentResource):
    """The load balancer controller, IngressClassParams + IngressClass `alb`, external-dns."""

    controller: k8s.helm.v3.Release
    class_params: k8s.apiextensions.CustomResource
    ingress_class: k8s.networking.v1.IngressClass
    external_dns: k8s.helm.v3.Release

    def __init__(
        self, name: str, args: IngressArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        validate_args(args)
        super().__init__("platform:platform:Ingress", name, None, opts)
        kube = KubeChildren(self, args.k8s_provider)
        values = pulumi.Output.all(args.cluster_name, args.vpc_id).apply(
            lambda v: charts.load_balancer_controller_values(
                cluster_name=v[0],
                region=args.region,
                vpc_id=v[1],
                high_availability=args.high_availability,
            )
        )
        self.controller = kube.helm_release(
            f"{name}-load-balancer-controller",
            charts.AWS_LOAD_BALANCER_CONTROLLER,
            values,
            depends_on=args.wait_for,
        )
        self.class_params = kube.custom_resource(
            f"{name}-class-params",
            INGRESS_CLASS_PARAMS,
            name=charts.INGRESS_CLASS,
            spec=ingress_class_params_spec(args),
            depends_on=[self.controller],
        )
        self.ingress_class = k8s.networking.v1.IngressClass(
            f"{name}-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=charts.INGRESS_CLASS, labels=MANAGED_BY_LABELS
            ),
            spec=k8s.networking.v1.IngressClassSpecArgs(
                controller=ALB_CONTROLLER,
                parameters=k8s.networking.v1.IngressClassParametersReferenceArgs(
                    api_group=INGRESS_CLASS_PARAMS.group,
                    kind=INGRESS_CLASS_PARAMS.kind,
                    name=charts.INGRESS_CLASS,
                ),
            ),
            opts=kube.opts([self.class_params]),
        )
        self.external_dns = kube.helm_release(
            f"{name}-external-dns",
            charts.EXTERNAL_DNS,
            pulumi.Output.from_input(args.cluster_name).apply(
                lambda cluster: charts.external_dns_values(
                    cluster_name=cluster, zone_name=args.zone_name, zone_id=args.zone_id
                )
            ),
            depends_on=args.wait_for,
        )
        self.register_outputs(
            {
                "controller": self.controller.status,
                "class_params": self.class_params.urn,
                "ingress_class": self.ingress_class.metadata,
                "external_dns": self.external_dns.status,
            }
        )
