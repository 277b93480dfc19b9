"""The EKS add-ons of issue 13 on the declared graph: ingress (ALB controller, IngressClass,
external-dns), node autoscaling, log shipping, the default StorageClass, alert routing, Jaeger's
storage, vpc-cni network policy, and their roles; plus the pure documents behind them."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from infra.config import (
    ON_DEMAND_FLOOR,
    ConfigError,
    load_stack_config,
    load_stack_file,
    read_stack_file,
)
from infra.platform import charts, controller_policies
from infra.platform.ingress import ALB_CONTROLLER
from platform_cli.offline import Declared, DeclaredResource, run_stack
from tests.infra.platform_support import declared, eks_cluster_arn

MANAGED_ENVS = ("dev", "staging", "prod")
RELEASE = "kubernetes:helm.sh/v3:Release"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


@functools.cache
def program(env: str) -> Declared:
    """The whole program of a committed stack (the cluster and network included)."""
    return run_stack(load_stack_file(env))


def release(d: Declared, chart: str) -> DeclaredResource:
    (found,) = [r for r in d.of_type(RELEASE) if r.inputs["chart"] == chart]
    return found


def policy(d: Declared, role: str) -> dict[str, Any]:
    (found,) = [r for r in d.of_type(ROLE_POLICY) if r.name == f"platform-identities-{role}-policy"]
    document: dict[str, Any] = json.loads(found.inputs["policy"])
    return document


def root_app(d: Declared) -> DeclaredResource:
    return d.one("kubernetes:argoproj.io/v1alpha1:Application")


# --- Ingress ------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_the_ingress_class_fixes_https_certificate_scheme_and_cidrs_from_config(env: str) -> None:
    cfg = load_stack_file(env).ingress
    d = declared(env)
    ingress_class = d.one("kubernetes:networking.k8s.io/v1:IngressClass")
    assert ingress_class.inputs["metadata"]["name"] == charts.INGRESS_CLASS
    assert ingress_class.inputs["spec"]["controller"] == ALB_CONTROLLER
    (params,) = [r for r in d.resources if r.inputs.get("kind") == "IngressClassParams"]
    spec = params.inputs["spec"]
    assert spec["certificateArn"] == [cfg.certificate_arn]
    assert spec["scheme"] == cfg.scheme
    assert spec["inboundCIDRs"] == list(cfg.allowed_cidrs)
    assert spec["sslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert spec["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}
    # The class and its controller exist before the root app syncs the Ingress, and (Pulumi
    # destroys in reverse) outlive it: the controller deletes the ALB while it still runs.
    controller = release(d, charts.AWS_LOAD_BALANCER_CONTROLLER.chart)
    assert d.depends_on(params, controller)
    for needed in (ingress_class, controller, release(d, charts.EXTERNAL_DNS.chart)):
        assert d.depends_on(root_app(d), needed), needed.name


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_the_controllers_start_after_their_pod_identity(env: str) -> None:
    d = declared(env)
    associations = {
        r.inputs["serviceAccount"]: r
        for r in d.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    for chart, account in (
        (charts.AWS_LOAD_BALANCER_CONTROLLER, charts.LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT),
        (charts.EXTERNAL_DNS, charts.EXTERNAL_DNS_SERVICE_ACCOUNT),
        (charts.CLUSTER_AUTOSCALER, charts.CLUSTER_AUTOSCALER_SERVICE_ACCOUNT),
        (charts.FLUENT_BIT, charts.FLUENT_BIT_SERVICE_ACCOUNT),
    ):
        assert d.depends_on(release(d, chart.chart), associations[account]), chart.chart


def test_external_dns_manages_the_configured_zone_only() -> None:
    cfg = load_stack_file("prod").ingress
    d = declared("prod")
    values = release(d, charts.EXTERNAL_DNS.chart).inputs["values"]
    assert values["domainFilters"] == [cfg.zone_name]
    assert f"--zone-id-filter={cfg.zone_id}" in values["extraArgs"]
    assert values["txtOwnerId"] == "plat-prod-eks" and values["policy"] == "sync"
    document = policy(d, "external-dns")
    changes = next(
        s for s in document["Statement"] if "route53:ChangeResourceRecordSets" in s["Action"]
    )
    assert changes["Resource"] == [f"arn:aws:route53:::hostedzone/{cfg.zone_id}"]


def test_the_load_balancer_controller_policy_is_scoped_to_this_cluster_and_vpc() -> None:
    document = controller_policies.load_balancer_controller_policy(
        region="eu-west-1", account="123456789012", vpc_id="vpc-1", cluster_name="c1"
    )
    for statement in document["Statement"]:
        mutating = [
            a
            for a in statement["Action"]
            if not a.split(":")[1].startswith(("Describe", "Get", "List"))
        ]
        for resource in statement["Resource"]:
            if mutating:
                assert resource != "*", statement["Sid"]
                assert ":eu-west-1:123456789012:" in resource or resource.startswith(
                    "arn:aws:iam::123456789012:"
                ), resource
        tags = json.dumps(statement.get("Condition", {}))
        if "elbv2.k8s.aws/cluster" in tags:
            assert '"c1"' in tags  # this cluster's tag value, not only "the tag exists"
    actions = {a for s in document["Statement"] for a in s["Action"]}
    assert not any(a.startswith(("waf", "shield", "cognito")) for a in actions)
    assert {
        "elasticloadbalancing:CreateLoadBalancer",
        "elasticloadbalancing:DeleteTargetGroup",
    } <= actions
    rules = next(s for s in document["Statement"] if s["Sid"] == "SecurityGroupRulesInThisVpc")
    assert rules["Condition"] == {
        "ArnEquals": {"ec2:Vpc": "arn:aws:ec2:eu-west-1:123456789012:vpc/vpc-1"}
    }


@pytest.mark.parametrize("value", ["", "*", "vpc-*"])
def test_a_wildcard_scope_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="allowed: a literal value without"):
        controller_policies.load_balancer_controller_policy(
            region="eu-west-1", account="123456789012", vpc_id=value, cluster_name="c1"
        )


# --- Node autoscaling ---------------------------------------------------------------------------


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_cluster_autoscaler_takes_its_limits_from_config(env: str) -> None:
    cfg = load_stack_file(env)
    assert cfg.node_autoscaling is not None
    values = release(declared(env), charts.CLUSTER_AUTOSCALER.chart).inputs["values"]
    assert values["extraArgs"]["max-nodes-total"] == cfg.node_autoscaling.max_nodes_total
    assert values["image"]["tag"] == charts.CLUSTER_AUTOSCALER_IMAGE_TAGS[cfg.cluster.version]
    assert values["autoDiscovery"]["clusterName"] == f"{cfg.name_prefix}-eks"
    document = policy(declared(env), "cluster-autoscaler")
    resize = next(s for s in document["Statement"] if s["Sid"] == "ResizeOwnNodeGroups")
    owned = resize["Condition"]["StringEquals"]
    assert owned[f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cfg.name_prefix}-eks"] == "owned"


def test_prod_keeps_an_on_demand_floor() -> None:
    cfg = load_stack_file("prod")
    floor = sum(g.min_size for g in cfg.cluster.node_groups if g.capacity_type == "ON_DEMAND")
    assert floor >= ON_DEMAND_FLOOR
    raw = read_stack_file("prod")
    groups = raw["platform:cluster"]["nodeGroups"]
    spot_only = [{**g, "capacityType": "SPOT"} for g in groups]
    with pytest.raises(ConfigError, match="on-demand nodes at minimum; prod must keep"):
        load_stack_config(
            "prod",
            {**raw, "platform:cluster": {**raw["platform:cluster"], "nodeGroups": spot_only}},
        )


@pytest.mark.parametrize(
    ("section", "value", "message"),
    [
        pytest.param(
            "platform:nodeAutoscaling",
            {"maxNodesTotal": 40},
            r"nodeAutoscaling.maxNodesTotal: 40 exceeds",
            id="max-nodes-total-above-what-the-node-groups-allow",
        ),
        pytest.param(
            "platform:observability",
            {"logRetentionDays": 10},
            r"observability.logRetentionDays: 10; allowed: 1, 3, 5",
            id="a-log-retention-cloudwatch-refuses",
        ),
    ],
)
def test_add_on_settings_the_cluster_cannot_honour_are_refused_before_any_resource(
    section: str, value: dict[str, int], message: str
) -> None:
    raw = read_stack_file("dev")
    with pytest.raises(ConfigError, match=message):
        load_stack_config("dev", {**raw, section: value})


# --- Storage, logs, alerts, traces -------------------------------------------------------------


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_the_default_storage_class_is_encrypted_gp3_bound_at_first_consumer(env: str) -> None:
    d = declared(env)
    storage = d.one("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage.inputs["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }
    assert storage.inputs["provisioner"] == "ebs.csi.aws.com"
    assert storage.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage.inputs["parameters"]["type"] == "gp3"
    assert storage.inputs["parameters"]["encrypted"] == "true"
    assert storage.inputs["parameters"]["kmsKeyId"].endswith(":key/ebs")
    # Every volume the platform asks for names it.
    values = release(d, charts.KUBE_PROMETHEUS_STACK.chart).inputs["values"]
    prometheus = values["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]
    alertmanager = values["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]
    assert prometheus["spec"]["storageClassName"] == charts.STORAGE_CLASS
    assert alertmanager["spec"]["storageClassName"] == charts.STORAGE_CLASS
    assert values["grafana"]["persistence"]["storageClassName"] == charts.STORAGE_CLASS
    for claim in d.of_type("kubernetes:core/v1:PersistentVolumeClaim"):
        assert claim.inputs["spec"]["storageClassName"] == charts.STORAGE_CLASS
    for release_ in (values,):
        assert release_
    for volume_user in (
        release(d, charts.KUBE_PROMETHEUS_STACK.chart),
        release(d, charts.JAEGER.chart),
    ):
        assert d.depends_on(volume_user, storage), volume_user.name


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_pod_logs_go_to_a_kms_encrypted_group_with_the_configured_retention(env: str) -> None:
    cfg = load_stack_file(env)
    d = declared(env)
    (group,) = [
        r for r in d.of_type("aws:cloudwatch/logGroup:LogGroup") if r.name == "platform-pod-logs"
    ]
    assert group.inputs["retentionInDays"] == cfg.observability.log_retention_days
    assert group.inputs["kmsKeyId"].endswith(":key/logs")
    values = release(d, charts.FLUENT_BIT.chart).inputs["values"]
    assert f"log_group_name      {group.inputs['name']}" in values["config"]["outputs"]
    assert "auto_create_group   Off" in values["config"]["outputs"]
    assert "Merge_Log           On" in values["config"]["filters"]  # the apps' JSON lines
    document = policy(d, "fluent-bit")
    (statement,) = document["Statement"]
    assert statement["Action"] == sorted(controller_policies.LOG_WRITE_ACTIONS)
    group_arn = next(r for r in statement["Resource"] if not r.endswith(":*"))
    assert group_arn.endswith(":platform-pod-logs")  # the mocks' ARN of that log group
    assert statement["Resource"] == [group_arn, f"{group_arn}:*"]


def test_alerts_route_by_severity_to_the_configured_receivers() -> None:
    cfg = load_stack_file("prod").observability
    d = declared("prod")
    config = release(d, charts.KUBE_PROMETHEUS_STACK.chart).inputs["values"]["alertmanager"][
        "config"
    ]
    routes = config["route"]["routes"]
    by_severity: dict[str, set[str]] = {}
    for route in routes:
        (matcher,) = route["matchers"]
        if matcher.startswith("severity"):
            by_severity.setdefault(matcher.split('"')[1], set()).add(route["receiver"])
    assert by_severity == {"critical": {"on-call", "platform-slack"}, "warning": {"platform-slack"}}
    receivers = {r["name"]: r for r in config["receivers"]}
    pagerduty = receivers["on-call"]["pagerduty_configs"][0]
    assert pagerduty["routing_key_file"].endswith("/alertmanager-receivers/on-call")
    slack = receivers["platform-slack"]["slack_configs"][0]
    assert slack["api_url_file"].endswith("/alertmanager-receivers/platform-slack")
    assert slack["channel"] == "#platform-alerts"
    # The credentials come through External Secrets, one key per receiver.
    (synced,) = [
        r
        for r in d.resources
        if r.inputs.get("kind") == "ExternalSecret"
        and r.inputs["metadata"]["name"] == charts.ALERTMANAGER_RECEIVERS_SECRET
    ]
    assert synced.inputs["metadata"]["namespace"] == "monitoring"
    keys = {item["secretKey"] for item in synced.inputs["spec"]["data"]}
    assert keys == {r.name for r in cfg.alert_receivers}
    assert {item["remoteRef"]["key"] for item in synced.inputs["spec"]["data"]} == {
        "plat-prod/alertmanager-receivers"
    }


def test_jaeger_keeps_traces_on_a_volume_in_prod_and_in_memory_in_dev() -> None:
    prod = declared("prod")
    values = release(prod, charts.JAEGER.chart).inputs["values"]
    assert values["storage"]["type"] == "badger"
    assert values["storage"]["badger"]["ephemeral"] is False
    assert (
        values["storage"]["badger"]["persistence"]["useExistingPvcName"] == charts.JAEGER_BADGER_PVC
    )
    (claim,) = prod.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    assert claim.inputs["metadata"]["name"] == charts.JAEGER_BADGER_PVC
    size = load_stack_file("prod").observability.trace_storage_gib
    assert claim.inputs["spec"]["resources"]["requests"]["storage"] == f"{size}Gi"
    backend = values["userconfig"]["extensions"]["jaeger_storage"]["backends"]["primary_store"]
    assert backend["badger"]["ephemeral"] is False
    dev = release(declared("dev"), charts.JAEGER.chart).inputs["values"]
    assert dev["storage"]["type"] == "memory"
    for values_ in (values, dev):
        # Jaeger 4.x has no top-level agent/collector/query (one v2 binary).
        assert not {"agent", "collector", "query"} & set(values_)


def test_prod_must_keep_traces_and_page_someone() -> None:
    raw = read_stack_file("prod")
    observability = {"logRetentionDays": 365}
    with pytest.raises(ConfigError) as failure:
        load_stack_config("prod", {**raw, "platform:observability": observability})
    assert "traceStorageGib: missing; prod keeps traces" in str(failure.value)
    assert "no pagerduty receiver" in str(failure.value)


# --- vpc-cni and the whole program ----------------------------------------------------------------


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_vpc_cni_enforces_network_policies(env: str) -> None:
    d = program(env)
    (cni,) = [r for r in d.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "vpc-cni"]
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
    trust = [
        json.loads(r.inputs["assumeRolePolicy"])
        for r in d.of_type("aws:iam/role:Role")
        if "pods.eks.amazonaws.com" in r.inputs["assumeRolePolicy"]
    ]
    assert trust
    for document in trust:
        condition = document["Statement"][0]["Condition"]
        assert condition["ArnEquals"]["aws:SourceArn"] == d.outputs["clusterArn"]
        assert (
            condition["StringEquals"]["aws:SourceAccount"] == d.outputs["clusterArn"].split(":")[4]
        )


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_s3_and_secrets_manager_have_interface_endpoints_in_the_data_subnets(env: str) -> None:
    d = program(env)
    endpoints = {
        r.inputs["serviceName"].rsplit(".", 1)[1]: r
        for r in d.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if r.inputs["vpcEndpointType"] == "Interface"
    }
    assert set(endpoints) == {"s3", "secretsmanager"}
    for endpoint in endpoints.values():
        assert endpoint.inputs["privateDnsEnabled"] is True
        subnets = endpoint.inputs["subnetIds"]
        assert len(subnets) == load_stack_file(env).network.az_count
        assert all(subnet.startswith("network-isolated-") for subnet in subnets), subnets
    dns = endpoints["s3"].inputs["dnsOptions"]
    assert dns["privateDnsOnlyForInboundResolverEndpoint"] is False


def test_the_local_flavour_declares_none_of_the_eks_add_ons() -> None:
    d = declared("localstack")
    charts_declared = {r.inputs["chart"] for r in d.of_type(RELEASE)}
    for spec in (
        charts.AWS_LOAD_BALANCER_CONTROLLER,
        charts.EXTERNAL_DNS,
        charts.CLUSTER_AUTOSCALER,
        charts.FLUENT_BIT,
    ):
        assert spec.chart not in charts_declared
    assert not d.of_type("kubernetes:storage.k8s.io/v1:StorageClass")


def test_the_cluster_arn_helper_matches_the_program() -> None:
    assert eks_cluster_arn(load_stack_file("dev")).endswith(":cluster/plat-dev-eks")
