"""Least privilege of the workload roles: pure documents, then what the layer declares."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.cluster.iam import pod_identity_trust_policy
from infra.config import load_stack_file
from infra.contracts import APPS, TOPICS, TOPICS_JOB_SERVICE_ACCOUNT, app_contract
from infra.platform import iam_policies
from infra.platform.iam_policies import MskArns
from tests.infra.platform_support import (
    MSK_UUID,
    app_secret_arns,
    audit_bucket_arn,
    db_secret_arn,
    declared,
    eks_cluster_arn,
    msk_cluster_arn,
    msk_cluster_name,
)

REGION = "eu-west-1"
CLUSTER_ARN = f"arn:aws:kafka:{REGION}:123456789012:cluster/plat-dev-kafka/{MSK_UUID}"
SECRET = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:plat-dev/db/app-AbCdEf"
MASTER = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:rds!db-1-AbCdEf"
BUCKET = "arn:aws:s3:::plat-dev-audit-archive"
MSK = MskArns.from_cluster(CLUSTER_ARN, "plat-dev-kafka", MSK_UUID)


def allowed_resources(app_name: str, msk: MskArns, secret: str, bucket: str) -> set[str]:
    """Every ARN an app may be granted, straight from its contract."""
    app = app_contract(app_name)
    allowed = {msk.cluster, *(msk.topic(t) for t in app.all_topics)}
    if app.consumer_group:
        allowed.add(msk.group(app.consumer_group))
    if app.uses_database:
        allowed.add(secret)
    if app.uses_archive_bucket:
        allowed.update({bucket, f"{bucket}/*"})
    return allowed


def policy_for(app_name: str) -> dict:
    return iam_policies.app_policy(
        app_contract(app_name),
        msk=MSK,
        region=REGION,
        db_credentials_secret_arn=SECRET,
        archive_bucket_arn=BUCKET,
    )


def test_msk_arns_have_the_documented_shape() -> None:
    prefix = f"arn:aws:kafka:{REGION}:123456789012"
    assert MSK.cluster == f"{prefix}:cluster/plat-dev-kafka/{MSK_UUID}"
    assert MSK.topic("events") == f"{prefix}:topic/plat-dev-kafka/{MSK_UUID}/events"
    assert MSK.group("audit") == f"{prefix}:group/plat-dev-kafka/{MSK_UUID}/audit"


@pytest.mark.parametrize("app", [a.name for a in APPS])
def test_app_policy_has_no_wildcard_and_stays_in_scope(app: str) -> None:
    policy = policy_for(app)
    assert not iam_policies.has_wildcard_action(policy)
    assert all("*" not in a for a in iam_policies.actions_of(policy))
    resources = set(iam_policies.resources_of(policy))
    assert resources <= allowed_resources(app, MSK, SECRET, BUCKET)
    assert MSK.cluster in resources


def test_producer_writes_only_and_consumers_read_their_topics_and_group() -> None:
    producer = policy_for("events-api")
    statements = {s["Sid"]: s for s in producer["Statement"]}
    assert "KafkaReadOwnTopics" not in statements and "KafkaOwnGroup" not in statements
    assert set(statements["KafkaWriteOwnTopics"]["Resource"]) == {
        MSK.topic("events"),
        MSK.topic("tasks"),
    }
    notifier = {s["Sid"]: s for s in policy_for("notifier")["Statement"]}
    assert notifier["KafkaOwnGroup"]["Resource"] == [MSK.group("notifier")]
    assert notifier["KafkaWriteOwnTopics"]["Resource"] == [MSK.topic("notifier.dlq")]
    assert "kafka-cluster:ReadData" in notifier["KafkaReadOwnTopics"]["Action"]


def test_only_the_audit_app_touches_s3() -> None:
    for app in APPS:
        s3 = [a for a in iam_policies.actions_of(policy_for(app.name)) if a.startswith("s3:")]
        assert bool(s3) is app.uses_archive_bucket, app.name


def test_archive_use_without_a_bucket_is_a_wiring_error() -> None:
    with pytest.raises(ValueError, match="archive bucket"):
        iam_policies.app_policy(app_contract("audit"), msk=MSK, region=REGION)


def test_kms_is_only_usable_through_the_named_service() -> None:
    key = f"arn:aws:kms:{REGION}:123456789012:key/abcd"
    policy = iam_policies.db_roles_policy(
        master_secret_arn=MASTER, credentials_secret_arns=[SECRET], region=REGION, kms_key_arn=key
    )
    kms = next(s for s in policy["Statement"] if s["Resource"] == [key])
    assert kms["Condition"]["StringEquals"]["kms:ViaService"] == (
        f"secretsmanager.{REGION}.amazonaws.com"
    )
    assert set(iam_policies.resources_of(policy)) == {MASTER, SECRET, key}


def test_only_the_db_roles_job_reads_the_master_secret_and_writes_logins() -> None:
    policy = iam_policies.db_roles_policy(
        master_secret_arn=MASTER, credentials_secret_arns=[SECRET], region=REGION
    )
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ReadMasterSecret"]["Action"] == sorted(iam_policies.SECRET_READ_ACTIONS)
    assert "secretsmanager:PutSecretValue" not in by_sid["ReadMasterSecret"]["Action"]
    assert "secretsmanager:PutSecretValue" in by_sid["PublishAppCredentials"]["Action"]
    for app in APPS:
        app_document = policy_for(app.name)
        assert MASTER not in iam_policies.resources_of(app_document)
        assert "secretsmanager:PutSecretValue" not in iam_policies.actions_of(app_document)


def test_keda_only_describes_consumer_topics_and_groups() -> None:
    policy = iam_policies.keda_lag_reader_policy(APPS, msk=MSK)
    actions = set(iam_policies.actions_of(policy))
    assert actions == {
        "kafka-cluster:Connect",
        "kafka-cluster:DescribeCluster",
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:DescribeGroup",
    }
    groups = {r for r in iam_policies.resources_of(policy) if ":group/" in r}
    assert groups == {MSK.group("notifier"), MSK.group("audit"), MSK.group("reminders")}


def test_trust_policy_is_pod_identity_only() -> None:
    arn = "arn:aws:eks:eu-west-1:123456789012:cluster/c"
    (statement,) = pod_identity_trust_policy(arn)["Statement"]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]


@given(name=st.from_regex(r"[a-z][a-z0-9._-]{0,30}\*[a-z0-9._-]{0,5}", fullmatch=True))
def test_a_wildcard_topic_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="literal name"):
        MSK.topic(name)


@given(name=st.from_regex(r"[a-z][a-z0-9._-]{0,40}", fullmatch=True))
def test_any_literal_topic_stays_under_this_cluster(name: str) -> None:
    assert MSK.topic(name) == f"{MSK.cluster.replace(':cluster/', ':topic/')}/{name}"


@pytest.mark.parametrize("arn", ["", "kafka-cluster", "arn:aws:kafka:eu-west-1:abc:cluster/x/y"])
def test_a_malformed_cluster_arn_is_refused(arn: str) -> None:
    with pytest.raises(ValueError, match="not an ARN"):
        MskArns.from_cluster(arn, "x", "y")


# --- On what the layer declares -------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_declared_app_policies_are_scoped_to_this_stack(env: str) -> None:
    cfg = load_stack_file(env)
    msk = MskArns.from_cluster(msk_cluster_arn(cfg), msk_cluster_name(cfg), MSK_UUID)
    d = declared(env)
    for app in APPS:
        policy = json.loads(
            d.one("aws:iam/rolePolicy:RolePolicy", f"-{app.name}-policy").inputs["policy"]
        )
        assert not iam_policies.has_wildcard_action(policy)
        resources = set(iam_policies.resources_of(policy))
        # The app's own login secret (the mocks' ARN of it), never the master secret.
        own = f"arn:aws:secretsmanager:{cfg.region}:123456789012:platform-db-credentials-{app.name}"
        assert db_secret_arn(cfg) not in resources
        key = f"arn:aws:kms:{cfg.region}:123456789012:key/rds"  # its KMS key, via SM only
        assert resources <= allowed_resources(app.name, msk, own, audit_bucket_arn(cfg)) | {key}


CONTROLLER_ROLE = re.compile(r"(load-balancer-controller|external-dns|cluster-autoscaler)")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_declared_policy_is_free_of_wildcards(env: str) -> None:
    policies = declared(env).of_type("aws:iam/rolePolicy:RolePolicy")
    # The apps, External Secrets, KEDA, the topics Job, the db-roles Job, and four controllers
    # (load balancer, external-dns, cluster-autoscaler, Fluent Bit).
    assert len(policies) == len(APPS) + 4 + 4
    for resource in policies:
        policy = json.loads(resource.inputs["policy"])
        assert policy["Statement"], resource.name
        assert not iam_policies.has_wildcard_action(policy), resource.name
        for statement in policy["Statement"]:
            if "*" not in statement["Resource"]:
                continue
            # IAM has no resource-level permission for these reads; nothing that changes
            # anything may be on `*`.
            assert CONTROLLER_ROLE.search(resource.name), resource.name
            verbs = {a.split(":", 1)[1] for a in statement["Action"]}
            assert all(v.startswith(("Describe", "List", "Get")) for v in verbs), statement


def test_external_secrets_reads_the_secrets_it_syncs_and_no_database_secret() -> None:
    policy = json.loads(
        declared("dev")
        .one("aws:iam/rolePolicy:RolePolicy", "external-secrets-policy")
        .inputs["policy"]
    )
    cfg = load_stack_file("dev")
    secrets_key = f"arn:aws:kms:{cfg.region}:123456789012:key/secrets"
    assert set(iam_policies.resources_of(policy)) == {*app_secret_arns(cfg), secrets_key}
    assert db_secret_arn(cfg) not in iam_policies.resources_of(policy)
    assert set(iam_policies.actions_of(policy)) <= {
        *iam_policies.SECRET_READ_ACTIONS,
        *iam_policies.KMS_DECRYPT_ACTIONS,
    }


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_associations_bind_each_role_to_its_service_account(env: str) -> None:
    d = declared(env)
    bindings = {
        (r.inputs["namespace"], r.inputs["serviceAccount"])
        for r in d.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    }
    expected = {("apps", app.service_account) for app in APPS}
    expected |= {("external-secrets", "external-secrets"), ("keda", "keda-operator")}
    expected |= {("apps", TOPICS_JOB_SERVICE_ACCOUNT), ("apps", "db-roles")}
    expected |= {
        ("kube-system", "aws-load-balancer-controller"),
        ("kube-system", "external-dns"),
        ("kube-system", "cluster-autoscaler"),
        ("logging", "fluent-bit"),
    }
    assert bindings == expected
    for role in d.of_type("aws:iam/role:Role"):
        trust = json.loads(role.inputs["assumeRolePolicy"])
        assert trust == pod_identity_trust_policy(eks_cluster_arn(load_stack_file(env))), role.name


def test_cluster_uuid_comes_from_a_real_arn_or_is_required() -> None:
    assert iam_policies.cluster_uuid_from_arn(CLUSTER_ARN) == MSK_UUID
    with pytest.raises(ValueError, match="pass the MSK cluster's `cluster_uuid`"):
        iam_policies.cluster_uuid_from_arn("arn:aws:msk:eu-west-1:123456789012:kafka-cluster")


def test_the_layer_derives_the_uuid_from_the_cluster_arn_when_not_given() -> None:
    from tests.infra.platform_support import declare

    cfg = load_stack_file("dev")
    d = declare("dev", msk_cluster_uuid=None)
    policy = json.loads(d.one("aws:iam/rolePolicy:RolePolicy", "-audit-policy").inputs["policy"])
    assert msk_cluster_arn(cfg) in iam_policies.resources_of(policy)


def test_topics_job_manages_exactly_the_contract_topics() -> None:
    msk = iam_policies.MskArns.from_cluster(CLUSTER_ARN, "plat-dev-kafka", MSK_UUID)
    policy = iam_policies.topics_admin_policy(tuple(t.name for t in TOPICS), msk=msk)
    assert not iam_policies.has_wildcard_action(policy)
    topic_resources = policy["Statement"][1]["Resource"]
    assert topic_resources == sorted(msk.topic(t.name) for t in TOPICS)
    assert "kafka-cluster:CreateTopic" in policy["Statement"][1]["Action"]
    assert "kafka-cluster:ReadData" not in iam_policies.actions_of(policy)
    with pytest.raises(ValueError, match="topics is empty"):
        iam_policies.topics_admin_policy((), msk=msk)


def test_argocd_restores_application_health_for_sync_waves() -> None:
    from infra.platform.charts import argocd_values

    cm = argocd_values(high_availability=False)["configs"]["cm"]
    lua = cm["resource.customizations.health.argoproj.io_Application"]
    assert "obj.status.health.status" in lua and lua.strip().endswith("return hs")
