"""The safe teardown order: consistent with the declared dependency graph, and `platform destroy`
prints it (dry run) or refuses clearly without the Pulumi CLI."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from infra.contracts import ENVIRONMENTS
from platform_cli import destroy_cmd, teardown
from platform_cli.main import app
from platform_cli.offline import Declared
from platform_cli.teardown import TEARDOWN_ORDER, StateNode, TeardownStep, assign_steps
from tests.infra.platform_support import declared

APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"


def nodes(d: Declared) -> list[StateNode]:
    return [StateNode(urn=r.urn, type=r.type, parent=r.parent) for r in d.resources]


def test_order_starts_with_the_root_app_and_ends_with_everything_else() -> None:
    keys = [step.key for step in TEARDOWN_ORDER]
    assert keys == ["gitops", "addons", "rest"]
    assert TEARDOWN_ORDER[0].component_type == teardown.GITOPS_BRIDGE_TYPE
    assert TEARDOWN_ORDER[-1].component_type is None  # the cluster and network go last
    assert teardown.WAIT_APPLICATIONS_GONE in TEARDOWN_ORDER[0].waits
    assert teardown.WAIT_CLOUD_LOAD_BALANCERS_GONE in TEARDOWN_ORDER[0].waits_for("eks")
    assert teardown.WAIT_CLOUD_LOAD_BALANCERS_GONE not in TEARDOWN_ORDER[0].waits_for("kubeconfig")
    for step in TEARDOWN_ORDER:
        assert set(step.waits_for("eks")) <= set(teardown.WAIT_DESCRIPTIONS)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_root_app_is_in_the_first_step(env: str) -> None:
    d = declared(env)
    assigned = assign_steps(nodes(d))
    assert d.one(APPLICATION).urn in assigned["gitops"]
    # Every resource belongs to exactly one step.
    flat = [urn for urns in assigned.values() for urn in urns]
    assert sorted(flat) == sorted(r.urn for r in d.resources)
    assert d.one("kubernetes:helm.sh/v3:Release", "argocd-release").urn in assigned["addons"]
    assert d.one("pulumi:providers:kubernetes").urn in assigned["rest"]


def order_violations(d: Declared, order: tuple[TeardownStep, ...]) -> list[tuple[str, str]]:
    """(later, earlier) pairs where a resource destroyed later depends on one destroyed earlier."""
    assigned = assign_steps(nodes(d), order)
    step_of = {urn: index for index, step in enumerate(order) for urn in assigned[step.key]}
    custom = [r for r in d.resources if r.custom]
    return [
        (later.name, earlier.name)
        for later in custom
        for earlier in custom
        if step_of[earlier.urn] < step_of[later.urn] and d.depends_on(later, earlier)
    ]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_resource_depends_on_one_destroyed_before_it(env: str) -> None:
    """Destroying step i first is safe only if nothing in a later step depends on step i."""
    assert order_violations(declared(env), TEARDOWN_ORDER) == []


def test_an_order_removing_add_ons_before_the_root_app_is_caught() -> None:
    monitoring_first = (
        TeardownStep("monitoring", "remove Prometheus first", "platform:platform:Observability"),
        *TEARDOWN_ORDER,
    )
    violations = order_violations(declared("dev"), monitoring_first)
    assert (
        "platform-gitops-root-app",
        "platform-observability-kube-prometheus-stack",
    ) in violations


def test_step_assignment_follows_parents_not_names() -> None:
    state = [
        StateNode("urn:layer", teardown.LAYER_TYPE, None),
        StateNode("urn:bridge", teardown.GITOPS_BRIDGE_TYPE, "urn:layer"),
        StateNode("urn:root-app", APPLICATION, "urn:bridge"),
        StateNode("urn:argocd", "kubernetes:helm.sh/v3:Release", "urn:layer"),
        StateNode("urn:vpc", "aws:ec2/vpc:Vpc", None),
    ]
    assert assign_steps(state) == {
        "gitops": ["urn:bridge", "urn:root-app"],
        "addons": ["urn:layer", "urn:argocd"],
        "rest": ["urn:vpc"],
    }


def test_nodes_from_an_exported_deployment_skip_providers_and_the_stack() -> None:
    deployment = {
        "resources": [
            {"urn": "urn:stack", "type": "pulumi:pulumi:Stack"},
            {"urn": "urn:prov", "type": "pulumi:providers:aws", "parent": "urn:stack"},
            {"urn": "urn:vpc", "type": "aws:ec2/vpc:Vpc", "parent": "urn:stack"},
        ]
    }
    assert teardown.nodes_from_deployment(deployment) == [
        StateNode("urn:vpc", "aws:ec2/vpc:Vpc", "urn:stack")
    ]


def test_wait_predicates_read_kubectl_json() -> None:
    assert teardown.remaining_applications({"items": [{"metadata": {"name": "notifier"}}]}) == [
        "notifier"
    ]
    services = {
        "items": [
            {"metadata": {"name": "web", "namespace": "apps"}, "spec": {"type": "LoadBalancer"}},
            {"metadata": {"name": "api", "namespace": "apps"}, "spec": {"type": "ClusterIP"}},
        ]
    }
    assert teardown.remaining_load_balancer_services(services) == ["apps/web"]
    volumes = {
        "items": [
            {
                "metadata": {"name": "pv-1"},
                "spec": {"claimRef": {"namespace": "monitoring", "name": "p"}},
            },
            {
                "metadata": {"name": "pv-2"},
                "spec": {"claimRef": {"namespace": "other", "name": "q"}},
            },
            {"metadata": {"name": "pv-3"}, "spec": {}},
        ]
    }
    assert teardown.remaining_platform_volumes(volumes) == ["pv-1 (monitoring/p)"]
    assert teardown.load_balancer_eni_descriptions(
        [
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/k8s-apps-web/0a1b",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/a1b2c3",
        ]
    ) == ["ELB net/k8s-apps-web/0a1b", "ELB a1b2c3"]
    # Target groups are waited for too, but have no ENI of their own.
    assert (
        teardown.load_balancer_eni_descriptions(
            ["arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/k8s-apps-api/9f"]
        )
        == []
    )
    ingresses = {"items": [{"metadata": {"name": "events-api", "namespace": "apps"}}]}
    assert teardown.remaining_ingresses(ingresses) == ["apps/events-api"]
    assert teardown.remaining_ingresses({"items": []}) == []


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_load_balancer_controller_outlives_its_load_balancers(env: str) -> None:
    """The controller is an add-on (step 2) and the wait for the ALB, its target groups and the
    Ingress is in step 1: the controller is removed only after what it made is gone."""
    steps = teardown.assign_steps(nodes(declared(env)))
    controller = next(
        r.urn
        for r in declared(env).resources
        if r.name == "platform-ingress-load-balancer-controller"
    )
    assert controller in steps["addons"]
    first = TEARDOWN_ORDER[0]
    assert teardown.WAIT_INGRESSES_GONE in first.waits_for("eks")
    assert teardown.WAIT_CLOUD_LOAD_BALANCERS_GONE in first.waits_for("eks")


def test_wait_until_gone_polls_then_times_out_naming_what_is_left() -> None:
    now = [0.0]
    answers = [["a", "b"], ["a"], []]
    destroy_cmd.wait_until_gone(
        "things",
        lambda: answers.pop(0),
        timeout_s=100,
        interval_s=10,
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: now[0],
    )
    assert answers == [] and now[0] == 20
    with pytest.raises(destroy_cmd.TeardownError, match=r"waiting for things: \['stuck'\]"):
        destroy_cmd.wait_until_gone(
            "things",
            lambda: ["stuck"],
            timeout_s=30,
            interval_s=10,
            sleep=lambda s: now.__setitem__(0, now[0] + s),
            clock=lambda: now[0],
        )


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_dry_run_prints_the_exact_steps(env: str) -> None:
    result = CliRunner().invoke(app, ["destroy", "--stack", env, "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    step_lines = [line for line in lines if line[:2] in ("1.", "2.", "3.")]
    assert [line.split()[1] for line in step_lines] == ["[gitops]", "[addons]", "[rest]"]
    commands = [line.strip() for line in lines if line.strip().startswith("$ pulumi destroy")]
    assert len(commands) == 3
    bridge = (
        f"urn:pulumi:{env}::platform::platform:platform:PlatformLayer"
        "$platform:platform:GitOpsBridge::platform-gitops"
    )
    assert f"--target '{bridge}' --target-dependents" in commands[0]
    assert "--target" not in commands[2]
    eks_wait = f"wait: {teardown.WAIT_CLOUD_LOAD_BALANCERS_GONE}"
    assert (eks_wait in result.output) is (env != "localstack")
    assert (
        output_index(lines, "[gitops]")
        < output_index(lines, "[addons]")
        < output_index(lines, "[rest]")
    )


def output_index(lines: list[str], marker: str) -> int:
    return next(i for i, line in enumerate(lines) if marker in line)


def test_real_run_without_the_pulumi_cli_errors_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(destroy_cmd.shutil, "which", lambda _name: None)
    result = CliRunner().invoke(app, ["destroy", "--stack", "dev", "--yes"])
    assert result.exit_code == 2
    assert "Pulumi CLI is not on PATH" in " ".join(result.output.split())


def test_unknown_stack_is_refused() -> None:
    result = CliRunner().invoke(app, ["destroy", "--stack", "qa", "--dry-run"])
    assert result.exit_code == 2
    assert "qa" in result.output
