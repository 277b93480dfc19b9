"""The safe teardown order, as data, plus the pure functions that apply it to a stack's state.

Why an order at all: controllers inside the cluster create cloud resources Pulumi does not know
about (load balancers and their ENIs for `LoadBalancer` Services, EBS volumes for PVCs). If the
cluster or its VPC went first, those would be orphaned and the VPC/subnet deletion would hang on
the ENIs. So:

1. `gitops`: delete the root Application (with the GitOps bridge). Its finalizer makes Argo CD,
   still running, delete the child Applications and their workloads; then wait until no
   Application, no `LoadBalancer` Service and no cloud load balancer/ENI of the cluster is left.
2. `addons`: delete the rest of the platform layer (Argo CD, External Secrets, KEDA, Prometheus,
   tracing, the facts channel, identities, in-cluster data); then wait until the persistent
   volumes of the platform namespaces are gone (their EBS volumes are deleted by the CSI driver,
   which must still be running).
3. `rest`: destroy everything else: data services, the cluster, the network. Pulumi's own graph
   orders this part (the cluster after its node groups, the VPC last).

The Pulumi graph already encodes step 1 before step 2 (the root app depends on every add-on, so
Pulumi deletes it first), and tests check that the order never contradicts the declared
dependencies. The explicit steps add the waits Pulumi cannot express, and make a partial
teardown (stop after step 1) possible. `platform destroy --stack X` runs them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.contracts import KUBE_SYSTEM_NAMESPACE
from infra.platform.charts import MONITORED_NAMESPACES

LAYER_TYPE = "platform:platform:PlatformLayer"
GITOPS_BRIDGE_TYPE = "platform:platform:GitOpsBridge"

# Wait checks, run after a step's destroy (implemented by the destroy command).
WAIT_APPLICATIONS_GONE = "argocd-applications-gone"
WAIT_LOAD_BALANCER_SERVICES_GONE = "load-balancer-services-gone"
WAIT_INGRESSES_GONE = "ingresses-gone"
WAIT_CLOUD_LOAD_BALANCERS_GONE = "cloud-load-balancers-and-enis-gone"
WAIT_PLATFORM_VOLUMES_GONE = "platform-volumes-gone"

WAIT_DESCRIPTIONS: dict[str, str] = {
    WAIT_APPLICATIONS_GONE: "no Argo CD Application is left in the argocd namespace",
    WAIT_LOAD_BALANCER_SERVICES_GONE: "no Service of type LoadBalancer is left in the cluster",
    WAIT_INGRESSES_GONE: (
        "no Ingress is left in the cluster (the load balancer controller has removed its ALB "
        "and released the Ingress finalizer)"
    ),
    WAIT_CLOUD_LOAD_BALANCERS_GONE: (
        "no ELB and no target group tagged for the cluster, and no ENI of those load "
        "balancers, is left (EKS only)"
    ),
    WAIT_PLATFORM_VOLUMES_GONE: "no PersistentVolume claimed from a platform namespace is left",
}


@dataclass(frozen=True)
class TeardownStep:
    """One destroy step.

    Attributes:
        key: short name (`gitops`, `addons`, `rest`).
        title: what the step does, for humans.
        component_type: the component whose subtree this step destroys; None = whatever is left.
        waits: checks that must pass before the next step starts.
        eks_only_waits: checks that only make sense on EKS (cloud load balancers).
    """

    key: str
    title: str
    component_type: str | None
    waits: tuple[str, ...] = ()
    eks_only_waits: tuple[str, ...] = ()

    def waits_for(self, cluster_mode: str) -> tuple[str, ...]:
        return self.waits + (self.eks_only_waits if cluster_mode == "eks" else ())


TEARDOWN_ORDER: tuple[TeardownStep, ...] = (
    TeardownStep(
        key="gitops",
        title="Delete the root Application; Argo CD prunes every app it deployed",
        component_type=GITOPS_BRIDGE_TYPE,
        waits=(WAIT_APPLICATIONS_GONE, WAIT_INGRESSES_GONE, WAIT_LOAD_BALANCER_SERVICES_GONE),
        # The load balancer controller is an add-on (step 2): it is still running here, so the
        # ALB and target groups it made are deleted by it, and step 2 starts only once they are
        # gone (a controller removed first would leave them, and their ENIs would block the VPC).
        eks_only_waits=(WAIT_CLOUD_LOAD_BALANCERS_GONE,),
    ),
    TeardownStep(
        key="addons",
        title="Delete the platform add-ons (Argo CD, ESO, KEDA, Prometheus, tracing, facts, ...)",
        component_type=LAYER_TYPE,
        waits=(WAIT_PLATFORM_VOLUMES_GONE,),
    ),
    TeardownStep(
        key="rest",
        title="Destroy the rest of the stack: data services, the cluster, the network",
        component_type=None,
    ),
)

# Namespaces whose volumes step 2 waits for (kube-system is never ours to empty).
PLATFORM_VOLUME_NAMESPACES: tuple[str, ...] = tuple(
    ns for ns in MONITORED_NAMESPACES if ns != KUBE_SYSTEM_NAMESPACE
)


@dataclass(frozen=True)
class StateNode:
    """The part of a resource that step selection needs (from `pulumi stack export` or mocks)."""

    urn: str
    type: str
    parent: str | None


def nodes_from_deployment(deployment: Mapping[str, Any]) -> list[StateNode]:
    """State nodes of an exported deployment (`pulumi stack export`), skipping providers."""
    resources = deployment.get("resources") or []
    return [
        StateNode(urn=r["urn"], type=r["type"], parent=r.get("parent"))
        for r in resources
        if not str(r.get("type", "")).startswith("pulumi:")
    ]


def _in_subtree(node: StateNode, root_urns: set[str], by_urn: Mapping[str, StateNode]) -> bool:
    current: StateNode | None = node
    seen: set[str] = set()
    while current is not None and current.urn not in seen:
        if current.urn in root_urns:
            return True
        seen.add(current.urn)
        current = by_urn.get(current.parent) if current.parent else None
    return False


def assign_steps(
    nodes: Iterable[StateNode], order: tuple[TeardownStep, ...] = TEARDOWN_ORDER
) -> dict[str, list[str]]:
    """Map each step key to the URNs it destroys; each resource belongs to its FIRST step."""
    node_list = list(nodes)
    by_urn = {n.urn: n for n in node_list}
    assigned: dict[str, list[str]] = {step.key: [] for step in order}
    taken: set[str] = set()
    for step in order:
        if step.component_type is None:
            roots = {n.urn for n in node_list}
        else:
            roots = {n.urn for n in node_list if n.type == step.component_type}
        for node in node_list:
            if node.urn not in taken and _in_subtree(node, roots, by_urn):
                assigned[step.key].append(node.urn)
                taken.add(node.urn)
    return assigned


def component_urn(stack: str, project: str, types: tuple[str, ...], name: str) -> str:
    """A component's URN as the engine builds it: the ancestors' types joined with `$`."""
    return f"urn:pulumi:{stack}::{project}::{'$'.join(types)}::{name}"


def destroy_command(stack: str, step: TeardownStep, targets: Iterable[str]) -> list[str]:
    """The CLI equivalent of one step (what a dry run prints)."""
    command = ["pulumi", "destroy", "--stack", stack, "--yes", "--skip-preview"]
    target_list = list(targets)
    if step.component_type is not None:
        for urn in target_list:
            command.extend(["--target", urn])
        # Anything outside the step that still depends on a target goes with it, instead of
        # failing the step.
        command.append("--target-dependents")
    return command


# --- Wait predicates on `kubectl get ... -o json` output (pure, tested directly) ---------------


def remaining_applications(application_list: Mapping[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in application_list.get("items", [])]


def remaining_load_balancer_services(service_list: Mapping[str, Any]) -> list[str]:
    return [
        f"{item['metadata'].get('namespace', '')}/{item['metadata']['name']}"
        for item in service_list.get("items", [])
        if item.get("spec", {}).get("type") == "LoadBalancer"
    ]


def remaining_ingresses(ingress_list: Mapping[str, Any]) -> list[str]:
    return [
        f"{item['metadata'].get('namespace', '')}/{item['metadata']['name']}"
        for item in ingress_list.get("items", [])
    ]


def remaining_platform_volumes(
    volume_list: Mapping[str, Any], namespaces: tuple[str, ...] = PLATFORM_VOLUME_NAMESPACES
) -> list[str]:
    found = []
    for item in volume_list.get("items", []):
        claim = item.get("spec", {}).get("claimRef") or {}
        if claim.get("namespace") in namespaces:
            found.append(f"{item['metadata']['name']} ({claim['namespace']}/{claim.get('name')})")
    return found


def load_balancer_eni_descriptions(load_balancer_arns: Iterable[str]) -> list[str]:
    """ENI description patterns of ELBs: `ELB app/<name>/<id>`, `ELB net/<name>/<id>`, or
    `ELB <name>` for a classic ELB (whose ARN ends `loadbalancer/<name>`)."""
    patterns = []
    for arn in load_balancer_arns:
        if ":loadbalancer/" not in arn:
            continue  # a target group has no ENI of its own
        resource = arn.split(":loadbalancer/", 1)[-1]
        patterns.append(f"ELB {resource}")
    return patterns
