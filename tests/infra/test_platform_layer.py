"""The platform layer under mocks: the GitOps bridge, the facts channel, ordering edges, the local
flavour, validation and tags, for every committed stack."""

from __future__ import annotations

import pytest

from infra.config import load_stack_file
from infra.contracts import (
    APP_NAMESPACE,
    APPS,
    ARGOCD_NAMESPACE,
    ARGOCD_PROJECT,
    ENVIRONMENTS,
    FACTS_CONFIGMAP,
    FACTS_DB_SECRET,
    KUBE_SYSTEM_NAMESPACE,
    MONITORING_NAMESPACE,
    DbSecretKey,
    Fact,
)
from infra.platform import charts
from infra.platform.gitops_bridge import ROOT_PROJECT
from infra.platform.layer import PlatformLayer
from platform_cli.offline import Declared, DeclaredResource
from tests.infra.platform_support import declare, declared, layer_args
from tests.infra.taggable import assert_tagged

RELEASE = "kubernetes:helm.sh/v3:Release"
APPLICATION = "kubernetes:argoproj.io/v1alpha1:Application"
APP_PROJECT = "kubernetes:argoproj.io/v1alpha1:AppProject"
ASSOCIATION = "aws:eks/podIdentityAssociation:PodIdentityAssociation"
MANAGED_ENVS = ("dev", "staging", "prod")


def release(d: Declared, chart: str) -> DeclaredResource:
    found = [r for r in d.of_type(RELEASE) if r.inputs["chart"] == chart]
    assert len(found) == 1, chart
    return found[0]


def custom(d: Declared, kind: str) -> list[DeclaredResource]:
    return [r for r in d.resources if r.custom and r.inputs.get("kind") == kind]


# --- The GitOps bridge ------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_root_app_syncs_the_environment_folder(env: str) -> None:
    cfg = load_stack_file(env)
    app = declared(env).one(APPLICATION)
    spec = app.inputs["spec"]
    assert spec["source"]["path"] == f"gitops/{env}"
    assert spec["source"]["repoURL"] == cfg.gitops.repo_url
    assert spec["source"]["targetRevision"] == cfg.gitops.target_revision
    assert spec["source"]["directory"] == {"recurse": False}
    assert spec["destination"]["namespace"] == ARGOCD_NAMESPACE
    policy = spec["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert {"ServerSideApply=true", "CreateNamespace=false"} <= set(policy["syncOptions"])
    assert policy["retry"]["limit"] > 0 and policy["retry"]["backoff"]["factor"] > 1
    assert app.inputs["metadata"]["finalizers"] == ["resources-finalizer.argocd.argoproj.io"]
    assert app.inputs["metadata"]["namespace"] == ARGOCD_NAMESPACE


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_app_projects_restrict_sources_destinations_and_kinds(env: str) -> None:
    cfg = load_stack_file(env)
    projects = {
        p.inputs["metadata"]["name"]: p.inputs["spec"] for p in declared(env).of_type(APP_PROJECT)
    }
    assert set(projects) == {ARGOCD_PROJECT, ROOT_PROJECT, "default"}
    # Argo CD's built-in project is locked: an Application naming it can deploy nothing.
    locked = projects["default"]
    assert locked["sourceRepos"] == [] and locked["destinations"] == []
    assert locked["clusterResourceWhitelist"] == [] == locked["namespaceResourceWhitelist"]
    apps = projects[ARGOCD_PROJECT]
    assert apps["sourceRepos"] == [cfg.gitops.repo_url]
    assert [d["namespace"] for d in apps["destinations"]] == [APP_NAMESPACE]
    assert apps["clusterResourceWhitelist"] == []
    root = projects[ROOT_PROJECT]
    assert root["sourceRepos"] == [cfg.gitops.repo_url]
    assert [d["namespace"] for d in root["destinations"]] == [ARGOCD_NAMESPACE]
    assert root["clusterResourceWhitelist"] == []
    assert root["namespaceResourceWhitelist"] == [{"group": "argoproj.io", "kind": "Application"}]
    # No wildcard anywhere: neither a `*` repo nor a `*` namespace/server.
    for spec in projects.values():
        assert "*" not in spec["sourceRepos"]
        for destination in spec["destinations"]:
            assert "*" not in destination.values()
    assert declared(env).one(APPLICATION).inputs["spec"]["project"] == ROOT_PROJECT


# --- The facts channel ------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_facts_configmap_carries_every_fact_and_each_apps_keys(env: str) -> None:
    config_map = declared(env).one("kubernetes:core/v1:ConfigMap")
    assert config_map.inputs["metadata"]["name"] == FACTS_CONFIGMAP
    assert config_map.inputs["metadata"]["namespace"] == APP_NAMESPACE
    data = config_map.inputs["data"]
    assert set(data) == {fact.value for fact in Fact}
    assert all(isinstance(v, str) and v for v in data.values())
    for app in APPS:
        assert {f.value for f in app.facts} <= set(data), app.name
    assert data[Fact.ENVIRONMENT] == env
    assert data[Fact.OTEL_EXPORTER_OTLP_ENDPOINT] == charts.OTLP_ENDPOINT


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_managed_facts_point_at_msk_iam_and_rds(env: str) -> None:
    data = declared(env).one("kubernetes:core/v1:ConfigMap").inputs["data"]
    assert data[Fact.KAFKA_AUTH_MODE] == "iam"
    assert data[Fact.KAFKA_BOOTSTRAP_SERVERS].endswith(":9098")
    assert data[Fact.DB_SECRET_REF].startswith("arn:aws:secretsmanager:")
    assert data[Fact.DB_PORT] == "5432"


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_on_rds_no_secret_copies_the_master_credentials(env: str) -> None:
    """Each app reads its own login (db_credentials); nothing syncs the master secret."""
    names = {e.inputs["metadata"]["name"] for e in custom(declared(env), "ExternalSecret")}
    assert FACTS_DB_SECRET not in names
    secrets = declared(env).of_type("aws:secretsmanager/secret:Secret")
    uses_db = {app.name for app in APPS if app.uses_database}
    assert {s.inputs["name"] for s in secrets} == {
        f"{load_stack_file(env).name_prefix}/db/{app}" for app in uses_db
    }
    for secret in secrets:
        assert "secretString" not in secret.inputs  # the value never passes through Pulumi
        assert secret.inputs["kmsKeyId"]


@pytest.mark.parametrize("env", ["localstack"])
def test_db_secret_is_synced_with_the_contract_keys(env: str) -> None:
    (external,) = [
        e
        for e in custom(declared(env), "ExternalSecret")
        if e.inputs["metadata"]["name"] == FACTS_DB_SECRET
    ]
    assert external.inputs["metadata"]["namespace"] == APP_NAMESPACE
    spec = external.inputs["spec"]
    assert spec["target"]["name"] == FACTS_DB_SECRET
    mapping = {d["secretKey"]: d["remoteRef"]["property"] for d in spec["data"]}
    assert mapping == {DbSecretKey.USER.value: "username", DbSecretKey.PASSWORD.value: "password"}
    (store,) = custom(declared(env), "ClusterSecretStore")
    assert spec["secretStoreRef"] == {
        "kind": "ClusterSecretStore",
        "name": store.inputs["metadata"]["name"],
    }
    data = declared(env).one("kubernetes:core/v1:ConfigMap").inputs["data"]
    assert {d["remoteRef"]["key"] for d in spec["data"]} == {data[Fact.DB_SECRET_REF]}


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_secret_store_uses_pod_identity_not_static_keys(env: str) -> None:
    (store,) = custom(declared(env), "ClusterSecretStore")
    aws = store.inputs["spec"]["provider"]["aws"]
    assert aws == {"service": "SecretsManager", "region": load_stack_file(env).region}
    # The apps, and Alertmanager's receiver credentials in the monitoring namespace.
    assert store.inputs["spec"]["conditions"] == [
        {"namespaces": [APP_NAMESPACE, MONITORING_NAMESPACE]}
    ]


# --- Ordering -----------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_custom_resources_wait_for_their_operator(env: str) -> None:
    d = declared(env)
    operator_of = {
        "AppProject": "argo-cd",
        "Application": "argo-cd",
        "ClusterSecretStore": "external-secrets",
        "ExternalSecret": "external-secrets",
        "Kafka": "strimzi-kafka-operator",
        "KafkaNodePool": "strimzi-kafka-operator",
        "Cluster": "cloudnative-pg",
    }
    customs = [
        r
        for r in d.resources
        if r.type.startswith("kubernetes:") and r.inputs.get("kind") in operator_of
    ]
    assert customs
    for resource in customs:
        operator = release(d, operator_of[resource.inputs["kind"]])
        assert d.depends_on(resource, operator), resource.name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_servicemonitor_users_wait_for_the_monitoring_crds(env: str) -> None:
    d = declared(env)
    crds = release(d, "kube-prometheus-stack")
    for chart in ("argo-cd", "external-secrets", "keda"):
        assert d.depends_on(release(d, chart), crds), chart


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_releases_wait_for_their_namespace(env: str) -> None:
    d = declared(env)
    namespaces = {
        r.inputs["metadata"]["name"]: r for r in d.of_type("kubernetes:core/v1:Namespace")
    }
    for resource in d.of_type(RELEASE):
        ns = resource.inputs["namespace"]
        if ns == KUBE_SYSTEM_NAMESPACE:
            assert ns not in namespaces  # never created, so never deleted
            continue
        assert d.depends_on(resource, namespaces[ns]), resource.name


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_root_app_waits_for_argocd_facts_identities_and_crds(env: str) -> None:
    d = declared(env)
    root = d.one(APPLICATION)
    prerequisites = [
        release(d, "argo-cd"),
        release(d, "kube-prometheus-stack"),
        release(d, "keda"),
        release(d, "opentelemetry-collector"),
        d.one("kubernetes:core/v1:ConfigMap"),
        *custom(d, "ExternalSecret"),
        *custom(d, "ClusterSecretStore"),
        *d.of_type(APP_PROJECT),
        *d.of_type(ASSOCIATION),
        *custom(d, "Kafka"),
        *custom(d, "Cluster"),
    ]
    for prerequisite in prerequisites:
        assert d.depends_on(root, prerequisite), prerequisite.name
    # ...and nothing in the layer waits for the root app, so Pulumi deletes it first.
    assert not any(d.depends_on(r, root) for r in d.resources if r is not root)


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_controllers_start_after_their_pod_identity(env: str) -> None:
    d = declared(env)
    associations = {r.inputs["serviceAccount"]: r for r in d.of_type(ASSOCIATION)}
    assert d.depends_on(release(d, "external-secrets"), associations["external-secrets"])
    assert d.depends_on(release(d, "keda"), associations["keda-operator"])
    for association in associations.values():
        role = association.name.removesuffix("-association")
        assert d.depends_on(association, d.by_name(f"{role}-policy")), association.name


# --- The local flavour ------------------------------------------------------------------------


def test_local_flavour_declares_strimzi_and_cnpg_and_no_aws() -> None:
    d = declared("localstack")
    assert not [r for r in d.resources if r.type.startswith("aws:")]
    assert {r.inputs["chart"] for r in d.of_type(RELEASE)} >= {
        "strimzi-kafka-operator",
        "cloudnative-pg",
    }
    (kafka,) = custom(d, "Kafka")
    assert kafka.inputs["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka.inputs["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka.inputs["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    (pool,) = custom(d, "KafkaNodePool")
    assert set(pool.inputs["spec"]["roles"]) == {"controller", "broker"}
    assert (
        pool.inputs["metadata"]["labels"]["strimzi.io/cluster"] == kafka.inputs["metadata"]["name"]
    )
    # Topics have one owner, the topics Job (rendered into gitops/): no KafkaTopic CRs, and no
    # topic operator that could create or delete topics behind its back.
    assert custom(d, "KafkaTopic") == []
    assert "entityOperator" not in kafka.inputs["spec"]
    (postgres,) = custom(d, "Cluster")
    assert postgres.inputs["apiVersion"] == "postgresql.cnpg.io/v1"
    assert postgres.inputs["spec"]["imageName"].endswith(":16.6")


def test_local_facts_point_inside_the_cluster() -> None:
    data = declared("localstack").one("kubernetes:core/v1:ConfigMap").inputs["data"]
    assert data[Fact.KAFKA_AUTH_MODE] == "plaintext"
    assert (
        data[Fact.KAFKA_BOOTSTRAP_SERVERS]
        == "platform-kafka-bootstrap.kafka.svc.cluster.local:9092"
    )
    assert data[Fact.DB_HOST] == "platform-pg-rw.database.svc.cluster.local"
    assert data[Fact.DB_SECRET_REF] == "platform-pg-app"
    (store,) = custom(declared("localstack"), "ClusterSecretStore")
    assert store.inputs["spec"]["provider"]["kubernetes"]["remoteNamespace"] == "database"


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_managed_flavour_has_no_in_cluster_data(env: str) -> None:
    d = declared(env)
    charts_declared = {r.inputs["chart"] for r in d.of_type(RELEASE)}
    assert not charts_declared & {"strimzi-kafka-operator", "cloudnative-pg"}
    assert not custom(d, "Kafka") and not custom(d, "Cluster")


# --- Validation, structure, tags ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"environment": "qa"}, "environment: 'qa'"),
        ({"prometheus_retention": "two weeks"}, "retention 'two weeks'"),
        ({"prometheus_storage_gib": 0}, "storage_gib 0"),
        ({"gitops_revision": ""}, "gitops_repo_url/gitops_revision"),
    ],
)
def test_bad_args_fail_before_any_resource(overrides: dict, fragment: str) -> None:
    with pytest.raises(Exception, match=fragment):
        declare("dev", **overrides)


def test_validation_happens_before_children() -> None:
    import pulumi_kubernetes as k8s

    from platform_cli.offline import run_program

    created: list[str] = []

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="x")
        try:
            PlatformLayer(
                "platform", layer_args(load_stack_file("dev"), provider, gitops_revision="")
            )
        except ValueError as exc:
            created.append(str(exc))

    d = run_program(program, stack="dev", region="eu-west-1")
    assert created and "gitops_revision" in created[0]
    assert [r.type for r in d.resources] == ["pulumi:providers:kubernetes"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_child_is_under_the_layer_and_uses_the_cluster_provider(env: str) -> None:
    d = declared(env)
    layer = d.one("platform:platform:PlatformLayer")
    provider = d.one("pulumi:providers:kubernetes")
    for resource in d.resources:
        if resource in (layer, provider):
            continue
        assert layer in list(d.ancestors(resource)), resource.name
        if resource.type.startswith("kubernetes:"):
            assert resource.provider and resource.provider.startswith(provider.urn), resource.name
    assert set(d.component_outputs[layer.urn]) >= {
        "gitops",
        "facts",
        "otlp_endpoint",
        "gitops_path",
    }


@pytest.mark.parametrize("env", MANAGED_ENVS)
def test_aws_resources_carry_the_base_tags(env: str) -> None:
    assert_tagged(declared(env))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_config_map_is_the_facts_function_of_the_layer_values(env: str) -> None:
    from infra.contracts import app_environment

    data = declared(env).one("kubernetes:core/v1:ConfigMap").inputs["data"]
    assert data == app_environment({Fact(key): value for key, value in data.items()})
    partial: dict[Fact, str] = {Fact(k): v for k, v in data.items() if k != Fact.DB_SECRET_REF}
    with pytest.raises(ValueError, match="missing DB_SECRET_REF"):
        app_environment(partial)


def test_local_kafka_replication_cannot_exceed_its_nodes() -> None:
    import pulumi_kubernetes as k8s

    from infra.platform.local_data import LocalData, LocalDataArgs
    from platform_cli.offline import run_program

    errors: list[str] = []

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig="x")
        args = LocalDataArgs(
            k8s_provider=provider,
            postgres_version="16.6",
            database_name="platform",
            kafka_replicas=1,
            kafka_replication_factor=3,
        )
        try:
            LocalData("local", args)
        except ValueError as exc:
            errors.append(str(exc))

    d = run_program(program, stack="localstack", region="us-east-1")
    assert errors and "kafka_replication_factor: 3" in errors[0]
    assert [r.type for r in d.resources] == ["pulumi:providers:kubernetes"]
