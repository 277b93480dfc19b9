"""`platform destroy --stack X [--dry-run]`: tear a stack down in the safe order.

The order and the wait checks are data in `platform_cli.teardown`; this module runs them
through the Pulumi Automation API (which drives the Pulumi CLI), `kubectl` for the in-cluster
checks and boto3 for the cloud ones. `--dry-run` needs none of them: it prints the exact steps.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from infra.contracts import ARGOCD_API_GROUP, ARGOCD_NAMESPACE
from platform_cli.teardown import (
    GITOPS_BRIDGE_TYPE,
    LAYER_TYPE,
    TEARDOWN_ORDER,
    WAIT_APPLICATIONS_GONE,
    WAIT_CLOUD_LOAD_BALANCERS_GONE,
    WAIT_DESCRIPTIONS,
    WAIT_INGRESSES_GONE,
    WAIT_LOAD_BALANCER_SERVICES_GONE,
    WAIT_PLATFORM_VOLUMES_GONE,
    TeardownStep,
    assign_steps,
    component_urn,
    destroy_command,
    load_balancer_eni_descriptions,
    nodes_from_deployment,
    remaining_applications,
    remaining_ingresses,
    remaining_load_balancer_services,
    remaining_platform_volumes,
)

if TYPE_CHECKING:
    from infra.config import PlatformConfig

PULUMI_MISSING = (
    "the Pulumi CLI is not on PATH: `platform destroy` drives it through the Automation API. "
    "Install it (https://www.pulumi.com/docs/iac/download-install/) or run with --dry-run to "
    "print the steps."
)
KUBECTL_MISSING = (
    "kubectl is not on PATH: the teardown waits for Argo CD's prune and for load balancers and "
    "volumes to vanish through it. Install kubectl, or pass --skip-waits (unsafe)."
)
LAYER_COMPONENT_TYPES: dict[str, tuple[str, ...]] = {
    GITOPS_BRIDGE_TYPE: (LAYER_TYPE, GITOPS_BRIDGE_TYPE),
    LAYER_TYPE: (LAYER_TYPE,),
}
LAYER_CHILD_SUFFIX: dict[str, str] = {GITOPS_BRIDGE_TYPE: "-gitops", LAYER_TYPE: ""}


class TeardownError(RuntimeError):
    """A step or a wait failed; the message says which and what is left."""


def planned_commands(stack: str, layer_name: str, project: str = "platform") -> list[list[str]]:
    """The CLI command of each step, with the component URNs the program declares."""
    commands = []
    for step in TEARDOWN_ORDER:
        targets: list[str] = []
        if step.component_type is not None:
            targets.append(
                component_urn(
                    stack,
                    project,
                    LAYER_COMPONENT_TYPES[step.component_type],
                    f"{layer_name}{LAYER_CHILD_SUFFIX[step.component_type]}",
                )
            )
        commands.append(destroy_command(stack, step, targets))
    return commands


def render_plan(stack: str, cluster_mode: str, layer_name: str) -> list[str]:
    """The human-readable dry-run: one block per step, its command and its waits."""
    lines = [f"Teardown of stack {stack!r} ({cluster_mode} cluster), in this order:"]
    for number, (step, command) in enumerate(
        zip(TEARDOWN_ORDER, planned_commands(stack, layer_name), strict=True), start=1
    ):
        lines.append(f"{number}. [{step.key}] {step.title}")
        # Quoted for a shell: URNs contain `$`.
        lines.append(f"   $ {shlex.join(command)}")
        for wait in step.waits_for(cluster_mode):
            lines.append(f"   wait: {wait}: {WAIT_DESCRIPTIONS[wait]}")
    return lines


# --- Waiting -------------------------------------------------------------------------------


def wait_until_gone(
    what: str,
    remaining: Callable[[], list[str]],
    *,
    timeout_s: float,
    interval_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    report: Callable[[str], None] = lambda _: None,
) -> None:
    """Poll `remaining()` until it returns nothing; raise TeardownError naming what is left."""
    deadline = clock() + timeout_s
    while True:
        left = remaining()
        if not left:
            return
        if clock() >= deadline:
            raise TeardownError(f"timed out after {timeout_s:.0f}s waiting for {what}: {left}")
        report(f"waiting for {what}: {len(left)} left ({', '.join(left[:3])})")
        sleep(interval_s)


@dataclass
class ClusterProbe:
    """Reads what is left in the cluster (kubectl) and in the cloud (boto3)."""

    kube_context: str | None
    region: str
    cluster_name: str | None
    load_balancer_arns: tuple[str, ...] = ()

    def _kubectl(self, *args: str) -> dict[str, Any]:
        context = ["--context", self.kube_context] if self.kube_context else []
        result = subprocess.run(
            ["kubectl", *context, *args, "-o", "json"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            # A CRD already removed means none of its objects are left.
            if "the server doesn't have a resource type" in result.stderr:
                return {"items": []}
            raise TeardownError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def applications(self) -> list[str]:
        return remaining_applications(
            self._kubectl("get", f"applications.{ARGOCD_API_GROUP}", "-n", ARGOCD_NAMESPACE)
        )

    def load_balancer_services(self) -> list[str]:
        return remaining_load_balancer_services(
            self._kubectl("get", "services", "--all-namespaces")
        )

    def ingresses(self) -> list[str]:
        return remaining_ingresses(self._kubectl("get", "ingresses", "--all-namespaces"))

    def platform_volumes(self) -> list[str]:
        return remaining_platform_volumes(self._kubectl("get", "persistentvolumes"))

    def cloud_load_balancers(self) -> list[str]:
        """ARNs of the ELBs and target groups that the cluster's controllers created (both
        tagging conventions)."""
        import boto3

        tagging = boto3.client("resourcegroupstaggingapi", region_name=self.region)
        arns: set[str] = set()
        for tag_filter in (
            {"Key": "elbv2.k8s.aws/cluster", "Values": [self.cluster_name]},
            {"Key": f"kubernetes.io/cluster/{self.cluster_name}"},
        ):
            pages = tagging.get_paginator("get_resources").paginate(
                ResourceTypeFilters=[
                    "elasticloadbalancing:loadbalancer",
                    "elasticloadbalancing:targetgroup",
                ],
                TagFilters=[tag_filter],
            )
            for page in pages:
                arns.update(m["ResourceARN"] for m in page["ResourceTagMappingList"])
        return sorted(arns)

    def load_balancer_enis(self) -> list[str]:
        if not self.load_balancer_arns:
            return []
        import boto3

        ec2 = boto3.client("ec2", region_name=self.region)
        patterns = [f"{p}*" for p in load_balancer_eni_descriptions(self.load_balancer_arns)]
        response = ec2.describe_network_interfaces(
            Filters=[{"Name": "description", "Values": patterns}]
        )
        return [eni["NetworkInterfaceId"] for eni in response["NetworkInterfaces"]]

    def cloud_leftovers(self) -> list[str]:
        return self.cloud_load_balancers() + self.load_balancer_enis()


def run_waits(
    step: TeardownStep,
    cluster_mode: str,
    probe: ClusterProbe,
    timeout_s: float,
    report: Callable[[str], None],
) -> None:
    checks: dict[str, Callable[[], list[str]]] = {
        WAIT_APPLICATIONS_GONE: probe.applications,
        WAIT_LOAD_BALANCER_SERVICES_GONE: probe.load_balancer_services,
        WAIT_INGRESSES_GONE: probe.ingresses,
        WAIT_CLOUD_LOAD_BALANCERS_GONE: probe.cloud_leftovers,
        WAIT_PLATFORM_VOLUMES_GONE: probe.platform_volumes,
    }
    for wait in step.waits_for(cluster_mode):
        wait_until_gone(WAIT_DESCRIPTIONS[wait], checks[wait], timeout_s=timeout_s, report=report)
        report(f"ok: {WAIT_DESCRIPTIONS[wait]}")


# --- The real run --------------------------------------------------------------------------


def _cluster_name_from_outputs(outputs: dict[str, Any]) -> str | None:
    for key in ("cluster_name", "clusterName", "eks_cluster_name"):
        if key in outputs:
            return str(getattr(outputs[key], "value", outputs[key]))
    return None


def run_teardown(
    cfg: PlatformConfig,
    *,
    kube_context: str | None,
    cluster_name: str | None,
    timeout_s: float,
    skip_waits: bool,
    console: Console,
) -> None:
    """Run every step through the Automation API; stop at the first failure. `cfg` is the
    stack's config: its name, region and cluster mode decide what is torn down and waited for."""
    if shutil.which("pulumi") is None:
        raise TeardownError(PULUMI_MISSING)
    if not skip_waits and shutil.which("kubectl") is None:
        raise TeardownError(KUBECTL_MISSING)
    from pulumi import automation as auto

    from infra.config import REPO_ROOT

    cluster_mode = cfg.cluster.mode
    stack = auto.select_stack(stack_name=cfg.stack, work_dir=str(REPO_ROOT))
    if cluster_mode == "eks" and cluster_name is None:
        cluster_name = _cluster_name_from_outputs(dict(stack.outputs()))
        if cluster_name is None and not skip_waits:
            raise TeardownError(
                "the stack exports no cluster_name output; pass --cluster-name so the teardown "
                "can find the cluster's load balancers"
            )
    assigned = assign_steps(nodes_from_deployment(stack.export_stack().deployment or {}))
    probe = ClusterProbe(kube_context=kube_context, region=cfg.region, cluster_name=cluster_name)
    for number, step in enumerate(TEARDOWN_ORDER, start=1):
        console.print(f"[bold]{number}. [{step.key}] {step.title}[/bold]")
        if step.component_type is not None and not assigned[step.key]:
            console.print("   nothing of this step is in the stack's state; skipped")
            continue
        if not skip_waits and WAIT_CLOUD_LOAD_BALANCERS_GONE in step.waits_for(cluster_mode):
            # Remember the load balancers now: once deleted they no longer show their tags,
            # but their ENIs may linger and must be waited for by name.
            probe.load_balancer_arns = tuple(probe.cloud_load_balancers())
        if step.component_type is None:
            stack.destroy(on_output=console.print)
        else:
            stack.destroy(
                target=assigned[step.key], target_dependents=True, on_output=console.print
            )
        if not skip_waits:
            run_waits(step, cluster_mode, probe, timeout_s, lambda m: console.print(f"   {m}"))


def register(app: typer.Typer) -> None:
    """Add `platform destroy` to the `platform` app."""

    @app.command("destroy")
    def destroy(
        stack: str = typer.Option(..., "--stack", "-s", help="Stack to tear down."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the steps; change nothing."),
        yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
        layer_name: str = typer.Option(
            "platform", help="Name of the PlatformLayer component in the program."
        ),
        kube_context: str | None = typer.Option(None, help="kubectl context of the cluster."),
        cluster_name: str | None = typer.Option(
            None, help="EKS cluster name (default: the stack's cluster_name output)."
        ),
        wait_timeout: int = typer.Option(900, help="Seconds each wait may take."),
        skip_waits: bool = typer.Option(
            False, "--skip-waits", help="Do not wait for prune/LBs/volumes (may orphan them)."
        ),
    ) -> None:
        """Tear a stack down in the safe order: root app, then add-ons, then the rest."""
        from infra.config import ConfigError, load_stack_file

        console = Console()
        try:
            cfg = load_stack_file(stack)
        except ConfigError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        # Plain echo, not rich: a wrapped URN could not be copied into a shell.
        for line in render_plan(stack, cfg.cluster.mode, layer_name):
            typer.echo(line)
        if cfg.protection.protect_resources:
            typer.echo(
                "note: this stack sets `protect` on stateful resources; step 3 stops at them "
                "until they are unprotected (`pulumi state unprotect`) on purpose."
            )
        if dry_run:
            raise typer.Exit(0)
        if not yes and not typer.confirm(f"Destroy stack {stack!r} in this order?"):
            raise typer.Exit(1)
        try:
            run_teardown(
                cfg,
                kube_context=kube_context,
                cluster_name=cluster_name,
                timeout_s=wait_timeout,
                skip_waits=skip_waits,
                console=console,
            )
        except TeardownError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
