"""What every environment must get: ArgoCD wiring, hardened pods, availability, monitoring."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from infra.config import REPO_ROOT
from infra.contracts import APP_NAMESPACE, APPS, ARGOCD_PROJECT, ENVIRONMENTS, FACTS_CONFIGMAP
from infra.gitops.manifests.monitoring import RUNBOOK_ANCHORS


def _objs(rendered: dict[str, str], env: str) -> dict[str, dict[str, Any]]:
    return {p: yaml.safe_load(t) for p, t in rendered.items() if p.startswith(f"{env}/")}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_child_applications_are_wired_for_the_root_app(rendered: dict[str, str], env: str) -> None:
    waves = {}
    for path, obj in _objs(rendered, env).items():
        if path.count("/") != 1:
            continue
        assert obj["kind"] == "Application"
        spec = obj["spec"]
        assert spec["project"] == ARGOCD_PROJECT
        assert spec["destination"]["namespace"] == APP_NAMESPACE
        assert spec["source"]["path"] == f"gitops/{env}/{obj['metadata']['name']}"
        assert "ServerSideApply=true" in spec["syncPolicy"]["syncOptions"]
        assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
        assert "resources-finalizer.argocd.argoproj.io" in obj["metadata"]["finalizers"]
        waves[obj["metadata"]["name"]] = int(
            obj["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
        )
    # config and secrets -> topics -> apps (whose migrations are PreSync hooks)
    assert waves["platform-config"] < waves["kafka-topics"] < min(waves[a.name] for a in APPS)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_pods_are_hardened(rendered: dict[str, str], env: str) -> None:
    templates = [
        (p, o["spec"]["template"]["spec"])
        for p, o in _objs(rendered, env).items()
        if o["kind"] in ("Deployment", "Job")
    ]
    # Deployments, migration Jobs, the topics Job, and on RDS the db-roles Job.
    assert len(templates) == 2 * len(APPS) + 1 + (env != "localstack")
    for path, pod in templates:
        assert pod["securityContext"]["runAsNonRoot"] is True, path
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, path
        assert pod["automountServiceAccountToken"] is False, path
        tmp = [v for v in pod["volumes"] if v["name"] == "tmp"]
        assert tmp and "emptyDir" in tmp[0], path
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, path
            assert ctx["allowPrivilegeEscalation"] is False, path
            assert ctx["capabilities"] == {"drop": ["ALL"]}, path
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}, path
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}, path
            assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"], path
            assert {"configMapRef": {"name": FACTS_CONFIGMAP}} in container["envFrom"], path


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_workloads_probe_spread_and_keep_the_api_available(
    rendered: dict[str, str], env: str
) -> None:
    for app in APPS:
        deployment = yaml.safe_load(rendered[f"{env}/{app.name}/deployment-{app.name}.yaml"])
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert {"livenessProbe", "readinessProbe", "startupProbe"} <= set(container)
        keys = {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
        assert "topology.kubernetes.io/zone" in keys
        assert pod["serviceAccountName"] == app.service_account
        if app.name == "events-api" and env not in ("dev", "localstack"):
            assert deployment["spec"]["replicas"] >= 2
            assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
            hpa = yaml.safe_load(
                rendered[f"{env}/events-api/horizontal-pod-autoscaler-events-api.yaml"]
            )
            assert hpa["spec"]["minReplicas"] >= 2


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_consumers_scale_on_lag_with_the_env_auth(rendered: dict[str, str], env: str) -> None:
    for app in (a for a in APPS if a.kind == "consumer"):
        scaled = yaml.safe_load(rendered[f"{env}/{app.name}/scaled-object-{app.name}.yaml"])
        for trigger in scaled["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "kafka"
            assert meta["consumerGroup"] == app.consumer_group
            assert meta["bootstrapServersFromEnv"] == "KAFKA_BOOTSTRAP_SERVERS"
            if env == "localstack":
                assert (meta["sasl"], meta["tls"]) == ("none", "disable")
            else:
                assert (meta["sasl"], meta["tls"]) == ("aws_msk_iam", "enable")
                assert trigger["authenticationRef"]["name"] == f"{app.name}-kafka-aws"


def test_every_alert_links_to_a_runbook_section(rendered: dict[str, str]) -> None:
    doc = (REPO_ROOT / "docs/runbooks.md").read_text()
    sections = set(re.findall(r"^## (\S+)$", doc, flags=re.M))
    assert set(RUNBOOK_ANCHORS) <= sections
    used = set()
    for path, text in rendered.items():
        obj = yaml.safe_load(text)
        if obj["kind"] != "PrometheusRule":
            continue
        for rule in obj["spec"]["groups"][0]["rules"]:
            anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
            assert anchor in sections, f"{path}: {rule['alert']} -> #{anchor}"
            used.add(anchor)
    assert used == set(RUNBOOK_ANCHORS)


def test_dashboards_carry_the_sidecar_label(rendered: dict[str, str]) -> None:
    dashboards = [yaml.safe_load(t) for p, t in rendered.items() if p.endswith("-dashboard.yaml")]
    assert len(dashboards) == len(ENVIRONMENTS) * len(APPS)
    for board in dashboards:
        assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
