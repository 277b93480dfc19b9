"""Chart pins and values builders of the platform layer (pure), and what the layer declares."""

from __future__ import annotations

import copy

import pytest
import yaml

from infra.config import load_stack_config, load_stack_file, read_stack_file
from infra.contracts import APP_NAMESPACE, APPS, ENVIRONMENTS
from infra.platform import charts
from platform_cli.offline import run_stack
from tests.infra.platform_support import declared

RELEASE = "kubernetes:helm.sh/v3:Release"


# Every pin in charts.py is checked when the module is imported (ChartSpec.__post_init__), so
# these tests exercise that check rather than repeat its regex over ALL_CHARTS.
@pytest.mark.parametrize("version", ["latest", "1.x", "~1.2.3", "^8.0.0", ">=0.22.0", "1.2", ""])
def test_a_range_or_latest_is_refused(version: str) -> None:
    with pytest.raises(ValueError, match=r"not pinned; allowed: an exact MAJOR\.MINOR\.PATCH"):
        charts.ChartSpec("r", "c", "https://example.org", version, "ns")


@pytest.mark.parametrize("repository", ["http://charts.example.org", "charts.example.org", ""])
def test_a_repository_not_on_https_is_refused(repository: str) -> None:
    with pytest.raises(ValueError, match="allowed: an https:// URL"):
        charts.ChartSpec("r", "c", repository, "1.2.3", "ns")


def test_an_exact_pin_over_https_is_accepted() -> None:
    spec = charts.ChartSpec("r", "c", "https://example.org", "1.2.3", "ns")
    assert (spec.version, spec.repository) == ("1.2.3", "https://example.org")


def test_chart_names_and_releases_are_unique() -> None:
    assert len({s.chart for s in charts.ALL_CHARTS}) == len(charts.ALL_CHARTS)
    assert len({s.release for s in charts.ALL_CHARTS}) == len(charts.ALL_CHARTS)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_declared_releases_use_the_pinned_specs(env: str) -> None:
    by_chart = {s.chart: s for s in charts.ALL_CHARTS}
    releases = declared(env).of_type(RELEASE)
    assert releases
    for release in releases:
        spec = by_chart[release.inputs["chart"]]
        assert release.inputs["version"] == spec.version
        assert release.inputs["repositoryOpts"] == {"repo": spec.repository}
        assert release.inputs["namespace"] == spec.namespace
        assert release.inputs["createNamespace"] is False


def test_argocd_is_ha_only_when_asked() -> None:
    ha = charts.argocd_values(high_availability=True)
    single = charts.argocd_values(high_availability=False)
    assert ha["redis-ha"]["enabled"] is True and single["redis-ha"]["enabled"] is False
    for part in ("server", "repoServer", "applicationSet"):
        assert ha[part]["replicas"] == 2 and single[part]["replicas"] == 1
    for values in (ha, single):
        for part in ("controller", "server", "repoServer", "applicationSet"):
            assert values[part]["metrics"]["enabled"] is True


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_declared_ha_follows_the_stack_tier(env: str) -> None:
    ha = load_stack_file(env).tier.high_availability
    argocd = declared(env).one(RELEASE, "argocd-release").inputs["values"]
    prometheus = declared(env).one(RELEASE, "kube-prometheus-stack").inputs["values"]
    assert argocd["redis-ha"]["enabled"] is ha
    assert argocd["server"]["replicas"] == (2 if ha else 1)
    assert prometheus["prometheus"]["prometheusSpec"]["replicas"] == (2 if ha else 1)


def test_ha_and_sizing_are_tier_settings_not_the_stack_name() -> None:
    """dev with prod's tier gets prod's charts: the program reads the tier, never the name."""
    raw = copy.deepcopy(read_stack_file("dev"))
    raw["platform:tier"] = read_stack_file("prod")["platform:tier"]
    releases = run_stack(load_stack_config("dev", raw))
    argocd = releases.one(RELEASE, "argocd-release").inputs["values"]
    spec = releases.one(RELEASE, "kube-prometheus-stack").inputs["values"]["prometheus"]
    assert argocd["redis-ha"]["enabled"] is True and argocd["server"]["replicas"] == 2
    assert spec["prometheusSpec"]["replicas"] == 2
    assert spec["prometheusSpec"]["retention"] == "30d"


def test_prometheus_picks_up_app_monitors_regardless_of_helm_labels() -> None:
    values = charts.kube_prometheus_stack_values(
        high_availability=False, retention="7d", storage_gib=20
    )
    spec = values["prometheus"]["prometheusSpec"]
    for kind in ("serviceMonitor", "podMonitor", "rule", "probe"):
        assert spec[f"{kind}SelectorNilUsesHelmValues"] is False
        assert spec[f"{kind}Selector"] == {}
        selector = spec[f"{kind}NamespaceSelector"]["matchExpressions"][0]
        assert selector["key"] == "kubernetes.io/metadata.name"
        assert APP_NAMESPACE in selector["values"]
    assert values["crds"]["enabled"] is True
    assert values["alertmanager"]["enabled"] is True
    dashboards = values["grafana"]["sidecar"]["dashboards"]
    assert (dashboards["label"], dashboards["labelValue"]) == ("grafana_dashboard", "1")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_retention_and_storage_come_from_the_stack_tier(env: str) -> None:
    sizing = load_stack_file(env).tier.prometheus
    spec = (
        declared(env)
        .one(RELEASE, "kube-prometheus-stack")
        .inputs["values"]["prometheus"]["prometheusSpec"]
    )
    assert spec["retention"] == sizing.retention
    storage = spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]
    assert storage["storage"] == f"{sizing.storage_gib}Gi"


def test_prod_keeps_metrics_longest() -> None:
    days = {env: int(load_stack_file(env).tier.prometheus.retention[:-1]) for env in ENVIRONMENTS}
    assert days["prod"] == max(days.values())


@pytest.mark.parametrize(
    ("retention", "storage", "fragment"),
    [("15 days", 10, "retention '15 days'"), ("15d", 0, "storage_gib 0")],
)
def test_bad_sizing_is_refused(retention: str, storage: int, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        charts.kube_prometheus_stack_values(
            high_availability=False, retention=retention, storage_gib=storage
        )


def test_pod_identity_service_accounts_are_pinned_in_values() -> None:
    eso = charts.external_secrets_values(high_availability=False)
    keda = charts.keda_values(high_availability=False)
    assert eso["serviceAccount"]["name"] == charts.EXTERNAL_SECRETS_SERVICE_ACCOUNT
    assert keda["serviceAccount"]["operator"]["name"] == charts.KEDA_OPERATOR_SERVICE_ACCOUNT


def test_collector_forwards_otlp_to_jaeger() -> None:
    values = charts.otel_collector_values(high_availability=False)
    pipeline = values["config"]["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    exporter = values["config"]["exporters"][pipeline["exporters"][0]]
    assert exporter["endpoint"].startswith(f"{charts.JAEGER_NAME}-collector.")
    assert charts.OTLP_ENDPOINT.startswith(f"http://{values['fullnameOverride']}.")
    assert charts.OTLP_ENDPOINT.endswith(":4318")


def test_only_the_local_cluster_skips_kubelet_tls() -> None:
    local = charts.metrics_server_values(high_availability=False, local_cluster=True)
    eks = charts.metrics_server_values(high_availability=False, local_cluster=False)
    assert "--kubelet-insecure-tls" in local["args"]
    assert "args" not in eks


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels AND matchExpressions; {} selects all).

    Hand-written because no API server runs here and the kubernetes client cannot evaluate
    selectors; it covers the operators the chart values use.
    """
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression["values"]
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
    return True


def _effective_selector(spec: dict, kind: str) -> dict:
    """The selector the chart writes into the Prometheus CR, as its template
    `templates/prometheus/prometheus.yaml` does: the given selector if non-empty, else the
    release label unless `<kind>SelectorNilUsesHelmValues` (default true) is false."""
    if spec.get(f"{kind}Selector"):
        return spec[f"{kind}Selector"]
    if spec.get(f"{kind}SelectorNilUsesHelmValues", True):
        return {"matchLabels": {"release": charts.KUBE_PROMETHEUS_STACK.release}}
    return {}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_declared_prometheus_selects_every_rendered_monitor_and_rule(env: str) -> None:
    """The rendered ServiceMonitors and PrometheusRules carry no Helm `release` label; the
    declared Prometheus must pick them up anyway (and a namespace outside the list must not)."""
    from infra.gitops.catalog import load_catalog
    from infra.gitops.renderer import render

    spec = (
        declared(env)
        .one(RELEASE, "kube-prometheus-stack")
        .inputs["values"]["prometheus"]["prometheusSpec"]
    )
    kinds = {"ServiceMonitor": "serviceMonitor", "PrometheusRule": "rule"}
    found = 0
    for path, text in render(load_catalog(), [env]).items():
        manifest = yaml.safe_load(text)
        if not path.startswith(f"{env}/") or manifest["kind"] not in kinds:
            continue
        meta, key = manifest["metadata"], kinds[manifest["kind"]]
        assert "release" not in meta["labels"]
        namespace_labels = {"kubernetes.io/metadata.name": meta["namespace"]}
        assert _selects(_effective_selector(spec, key), meta["labels"]), path
        assert _selects(spec[f"{key}NamespaceSelector"], namespace_labels), path
        found += 1
    assert found == 2 * len(APPS)
    outside = {"kubernetes.io/metadata.name": "default"}
    assert not _selects(spec["serviceMonitorNamespaceSelector"], outside)
