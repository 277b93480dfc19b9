"""NetworkPolicies (default deny, then only what each app uses) and the API's Ingress.

Broker and database addresses are facts known only after `pulumi up`, so egress is narrowed by
port rather than by address; DNS is narrowed to kube-dns.
"""

from __future__ import annotations

from infra.contracts import KUBE_SYSTEM_NAMESPACE, MONITORING_NAMESPACE, POSTGRES_PORT, Fact
from infra.gitops.catalog import AppSpec
from infra.gitops.manifests.common import (
    HTTPS_PORT,
    NAME_LABEL,
    EnvContext,
    Manifest,
    metadata,
)
from infra.gitops.manifests.workload import HTTP_PORT_NAME

# The EKS Pod Identity Agent serves credentials on a link-local address on every node.
POD_IDENTITY_AGENT_CIDR = "169.254.170.23/32"
POD_IDENTITY_AGENT_PORT = 80
INGRESS_NGINX_NAMESPACE = "ingress-nginx"


def _namespace(name: str) -> Manifest:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _tcp(port: int) -> Manifest:
    return {"protocol": "TCP", "port": port}


def default_deny(wave: int) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata("default-deny", "platform", component="network", wave=wave),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def _dns_egress() -> Manifest:
    return {
        "to": [
            {
                **_namespace(KUBE_SYSTEM_NAMESPACE),
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, _tcp(53)],
    }


def egress_ports(facts: tuple[Fact, ...], ctx: EnvContext, *, uses_database: bool) -> list[int]:
    """TCP ports an app needs, derived from the facts it reads (what its config points it at)."""
    ports = set()
    if Fact.KAFKA_BOOTSTRAP_SERVERS in facts:
        ports.add(ctx.kafka_port)
    if uses_database and Fact.DB_HOST in facts:
        ports.add(POSTGRES_PORT)
    if Fact.OTEL_EXPORTER_OTLP_ENDPOINT in facts:
        ports.add(ctx.otlp_port)
    if Fact.AUDIT_ARCHIVE_BUCKET in facts:
        ports.add(HTTPS_PORT)  # S3
    return sorted(ports)


def _egress_rules(ports: list[int], ctx: EnvContext) -> list[Manifest]:
    rules = [_dns_egress(), {"ports": [_tcp(port) for port in ports]}]
    if ctx.eks:
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": POD_IDENTITY_AGENT_CIDR}}],
                "ports": [_tcp(POD_IDENTITY_AGENT_PORT)],
            }
        )
    return rules


def app_policy(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    """Egress for the app's pods and its migration Job (same app label); ingress to its port."""
    contract = spec.contract
    ports = egress_ports(contract.facts, ctx, uses_database=contract.uses_database)
    if spec.routes:
        ports = sorted({*ports, HTTPS_PORT})  # the notifier's webhook and chat APIs
    sources = [{**_namespace(MONITORING_NAMESPACE)}]  # Prometheus scrapes /metrics
    if spec.ingress_hosts:
        if ctx.eks:
            # The AWS Load Balancer Controller sends traffic from the ALB's VPC addresses.
            sources.append({"ipBlock": {"cidr": ctx.cfg.network.vpc_cidr}})
        else:
            sources.append(_namespace(INGRESS_NGINX_NAMESPACE))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(contract.name, contract.name, component="network", wave=wave),
        "spec": {
            "podSelector": {"matchLabels": {NAME_LABEL: contract.name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": sources,
                    "ports": [_tcp(contract.port)],
                }
            ],
            "egress": _egress_rules(ports, ctx),
        },
    }


def topics_job_policy(job_name: str, ctx: EnvContext, wave: int) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(job_name, job_name, component="network", wave=wave),
        "spec": {
            "podSelector": {"matchLabels": {NAME_LABEL: job_name}},
            "policyTypes": ["Ingress", "Egress"],
            "egress": _egress_rules([ctx.kafka_port], ctx),
        },
    }


def ingress(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    host = spec.ingress_hosts[ctx.env]
    annotations: dict[str, str] = {}
    if ctx.eks:
        annotations = {
            # Internal ALB, HTTPS only; the certificate is discovered in ACM from the host name.
            "alb.ingress.kubernetes.io/scheme": "internal",
            "alb.ingress.kubernetes.io/target-type": "ip",
            "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
            "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "alb.ingress.kubernetes.io/healthcheck-path": spec.probes.readiness_path,
        }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(spec.name, spec.name, wave=wave, annotations=annotations),
        "spec": {
            "ingressClassName": ctx.ingress_class,
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {
                                        "name": spec.name,
                                        "port": {"name": HTTP_PORT_NAME},
                                    }
                                },
                            }
                        ]
                    },
                }
            ],
        },
    }
