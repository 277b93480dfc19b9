"""NetworkPolicies (default deny, then only what each app uses) and the API's Ingress.

Every egress rule names its destination as well as its port (`gitops_validate` refuses a
port-only rule). The broker and database addresses are facts known only after `pulumi up`, but
the subnets they live in are not: the subnet layout is a pure function of the stack's VPC CIDR
(`infra.network.cidr`), so on EKS:

- PostgreSQL (5432): the isolated (data) subnets, where RDS is;
- MSK IAM (9098): the private subnets, where the brokers' ENIs are;
- OTLP (4318): the collector's pods in the tracing namespace;
- S3 for the audit archive (443): the isolated subnets too, where the S3 *interface* endpoint's
  ENIs are. The VPC's S3 gateway endpoint cannot be used for this: its traffic goes to S3's
  public ranges (a managed prefix list, region-specific and changing), which a NetworkPolicy
  cannot name; the interface endpoint (private DNS on for the whole VPC) turns S3 into addresses
  inside our own data subnets;
- HTTPS for the notifier's channels (443): anywhere outside the VPC (webhooks, chat APIs);
- credentials: the Pod Identity agent's link-local address; DNS: kube-dns.

In the local flavour the data services are pods (Strimzi, CloudNativePG), named by namespace.
"""

from __future__ import annotations

from infra.contracts import (
    DATABASE_NAMESPACE,
    KAFKA_NAMESPACE,
    KUBE_SYSTEM_NAMESPACE,
    MONITORING_NAMESPACE,
    POSTGRES_PORT,
    TRACING_NAMESPACE,
    Fact,
)
from infra.gitops.catalog import AppSpec
from infra.gitops.manifests.common import (
    HTTPS_PORT,
    NAME_LABEL,
    EnvContext,
    Manifest,
    metadata,
)
from infra.gitops.manifests.workload import HTTP_PORT_NAME
from infra.network.cidr import Tier, subnet_cidr
from infra.platform.charts import OTEL_COLLECTOR

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


def subnet_blocks(ctx: EnvContext, tier: Tier) -> list[Manifest]:
    """`ipBlock` peers for one subnet tier of the stack's VPC (every configured AZ)."""
    network = ctx.cfg.network
    return [
        {"ipBlock": {"cidr": subnet_cidr(network.vpc_cidr, tier, az)}}
        for az in range(network.az_count)
    ]


def _pods(namespace: str, labels: dict[str, str] | None = None) -> Manifest:
    peer = _namespace(namespace)
    if labels:
        peer["podSelector"] = {"matchLabels": labels}
    return peer


COLLECTOR_POD_LABELS = {"app.kubernetes.io/instance": OTEL_COLLECTOR.release}
INTERNET_EXCEPT_VPC = "0.0.0.0/0"


def egress_rules(
    facts: tuple[Fact, ...], ctx: EnvContext, *, uses_database: bool, channels: bool = False
) -> list[Manifest]:
    """Egress an app needs, derived from the facts it reads, each rule with its destination."""
    rules: list[Manifest] = [_dns_egress()]
    if Fact.KAFKA_BOOTSTRAP_SERVERS in facts:
        brokers = subnet_blocks(ctx, "private") if ctx.msk else [_pods(KAFKA_NAMESPACE)]
        rules.append({"to": brokers, "ports": [_tcp(ctx.kafka_port)]})
    if uses_database and Fact.DB_HOST in facts:
        database = subnet_blocks(ctx, "isolated") if ctx.eks else [_pods(DATABASE_NAMESPACE)]
        rules.append({"to": database, "ports": [_tcp(POSTGRES_PORT)]})
    if Fact.OTEL_EXPORTER_OTLP_ENDPOINT in facts:
        rules.append(
            {
                "to": [_pods(TRACING_NAMESPACE, COLLECTOR_POD_LABELS)],
                "ports": [_tcp(ctx.otlp_port)],
            }
        )
    own_login = uses_database and ctx.own_db_logins
    if Fact.AUDIT_ARCHIVE_BUCKET in facts or own_login:
        # EKS: the S3 and Secrets Manager interface endpoints in the data subnets (the archive;
        # the app's own database login). Local: the AWS emulator outside the cluster.
        aws_apis = subnet_blocks(ctx, "isolated") if ctx.eks else [_outside_vpc(ctx)]
        rules.append({"to": aws_apis, "ports": [_tcp(HTTPS_PORT)]})
    if channels:
        rules.append({"to": [_outside_vpc(ctx)], "ports": [_tcp(HTTPS_PORT)]})
    if ctx.eks:
        rules.append(
            {
                "to": [{"ipBlock": {"cidr": POD_IDENTITY_AGENT_CIDR}}],
                "ports": [_tcp(POD_IDENTITY_AGENT_PORT)],
            }
        )
    return rules


def _outside_vpc(ctx: EnvContext) -> Manifest:
    return {"ipBlock": {"cidr": INTERNET_EXCEPT_VPC, "except": [ctx.cfg.network.vpc_cidr]}}


def _ingress_sources(ctx: EnvContext) -> list[Manifest]:
    """Where the API's load balancer sends from: the ALB's subnets (targets are pod IPs)."""
    if not ctx.eks:
        return [_namespace(INGRESS_NGINX_NAMESPACE)]
    tier: Tier = "public" if ctx.cfg.ingress.scheme == "internet-facing" else "private"
    return subnet_blocks(ctx, tier)


def _pods_policy(
    name: str, wave: int, *, egress: list[Manifest], ingress: list[Manifest] | None = None
) -> Manifest:
    """A NetworkPolicy for the pods labelled `name`: both directions, only the rules given."""
    spec: Manifest = {
        "podSelector": {"matchLabels": {NAME_LABEL: name}},
        "policyTypes": ["Ingress", "Egress"],
    }
    if ingress is not None:
        spec["ingress"] = ingress
    spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(name, name, component="network", wave=wave),
        "spec": spec,
    }


def app_policy(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    """Egress for the app's pods and its migration Job (same app label); ingress to its port."""
    contract = spec.contract
    sources = [{**_namespace(MONITORING_NAMESPACE)}]  # Prometheus scrapes /metrics
    if spec.public_paths:
        sources += _ingress_sources(ctx)
    return _pods_policy(
        contract.name,
        wave,
        ingress=[{"from": sources, "ports": [_tcp(contract.port)]}],
        egress=egress_rules(
            contract.facts,
            ctx,
            uses_database=contract.uses_database,
            channels=bool(spec.routes),
        ),
    )


def topics_job_policy(job_name: str, ctx: EnvContext, wave: int) -> Manifest:
    egress = egress_rules((Fact.KAFKA_BOOTSTRAP_SERVERS,), ctx, uses_database=False)
    return _pods_policy(job_name, wave, egress=egress)


def db_roles_job_policy(job_name: str, ctx: EnvContext, wave: int) -> Manifest:
    """The db-roles Job: PostgreSQL and Secrets Manager (both in the data subnets), credentials."""
    return _pods_policy(
        job_name, wave, egress=egress_rules((Fact.DB_HOST,), ctx, uses_database=True)
    )


def ingress(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    """Only `spec.public_paths` on the stack's host names; on EKS everything else about the load
    balancer (HTTPS only, certificate, scheme, client CIDRs, TLS policy) is fixed by the class's
    IngressClassParams, so the Ingress cannot loosen it."""
    annotations: dict[str, str] = {}
    if ctx.eks:
        annotations = {
            "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
            "alb.ingress.kubernetes.io/healthcheck-path": spec.probes.readiness_path,
            "alb.ingress.kubernetes.io/success-codes": "200",
        }
    paths = [
        {
            "path": path,
            "pathType": "Prefix",
            "backend": {"service": {"name": spec.name, "port": {"name": HTTP_PORT_NAME}}},
        }
        for path in spec.public_paths
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(spec.name, spec.name, wave=wave, annotations=annotations),
        "spec": {
            "ingressClassName": ctx.ingress_class,
            "rules": [{"host": host, "http": {"paths": paths}} for host in ctx.cfg.ingress.hosts],
        },
    }
