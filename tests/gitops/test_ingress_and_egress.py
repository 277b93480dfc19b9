"""The rendered API Ingress publishes only `/api/` and `/console/` over HTTPS on the stack's
hosts, and every NetworkPolicy egress rule names the destinations issue 13 asks for."""

from __future__ import annotations

import ipaddress
import json

import pytest
import yaml

from infra.config import load_stack_file
from infra.contracts import ENVIRONMENTS
from infra.network.cidr import subnet_cidr

INTERNAL_PATHS = ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/")
EKS_ENVS = ("dev", "staging", "prod")


def _load(rendered: dict[str, str], path: str) -> dict:
    document: dict = yaml.safe_load(rendered[path])
    return document


def _subnets(env: str, tier: str) -> set[str]:
    network = load_stack_file(env).network
    return {subnet_cidr(network.vpc_cidr, tier, az) for az in range(network.az_count)}  # type: ignore[arg-type]


def _routes(path: str, prefix: str) -> bool:
    """Kubernetes `Prefix` matching: element-wise on `/`-separated segments."""
    want = [p for p in prefix.split("/") if p]
    have = [p for p in path.split("/") if p]
    return have[: len(want)] == want


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_only_the_api_and_the_console_are_routed(rendered: dict[str, str], env: str) -> None:
    ingress = _load(rendered, f"{env}/events-api/ingress-events-api.yaml")
    cfg = load_stack_file(env)
    rules = ingress["spec"]["rules"]
    assert [rule["host"] for rule in rules] == list(cfg.ingress.hosts)
    for rule in rules:
        prefixes = [p["path"] for p in rule["http"]["paths"]]
        assert prefixes == ["/api/", "/console/"]
        assert {p["pathType"] for p in rule["http"]["paths"]} == {"Prefix"}
        for internal in INTERNAL_PATHS:
            assert not any(_routes(internal, prefix) for prefix in prefixes), internal
        assert _routes("/api/v1/events", "/api/") and _routes("/console/index.html", "/console/")
    if env in EKS_ENVS:
        assert ingress["spec"]["ingressClassName"] == "alb"
        listeners = json.loads(
            ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"]
        )
        assert listeners == [{"HTTPS": 443}]  # no HTTP listener at all


def _rules(rendered: dict[str, str], env: str, name: str) -> dict[int, list[dict]]:
    policy = _load(rendered, f"{env}/platform-config/network-policy-{name}.yaml")
    by_port: dict[int, list[dict]] = {}
    for rule in policy["spec"]["egress"]:
        assert rule.get("to"), rule  # never a port-only rule
        for port in rule["ports"]:
            by_port.setdefault(int(port["port"]), []).extend(rule["to"])
    return by_port


def _cidrs(peers: list[dict]) -> set[str]:
    return {peer["ipBlock"]["cidr"] for peer in peers if "ipBlock" in peer}


@pytest.mark.parametrize("env", EKS_ENVS)
def test_egress_names_the_data_subnets_the_collector_and_the_internet_for_the_notifier(
    rendered: dict[str, str], env: str
) -> None:
    isolated, private = _subnets(env, "isolated"), _subnets(env, "private")
    vpc = load_stack_file(env).network.vpc_cidr
    audit = _rules(rendered, env, "audit")
    assert _cidrs(audit[5432]) == isolated
    assert _cidrs(audit[9098]) == private
    assert _cidrs(audit[443]) == isolated  # S3 and Secrets Manager interface endpoints
    (collector,) = audit[4318]
    assert collector["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "tracing"
    }
    assert collector["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/instance": "otel-collector"
    }
    notifier = _rules(rendered, env, "notifier")
    outside = [p for p in notifier[443] if "except" in p.get("ipBlock", {})]
    assert outside == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [vpc]}}]
    # Only the notifier reaches beyond the VPC.
    for name in ("audit", "events-api", "kafka-topics", "db-roles"):
        for peers in _rules(rendered, env, name).values():
            for cidr in _cidrs(peers):
                network = ipaddress.ip_network(cidr)
                assert network.subnet_of(ipaddress.ip_network(vpc)) or network.prefixlen == 32, (
                    name,
                    cidr,
                )
