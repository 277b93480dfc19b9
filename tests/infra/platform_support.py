"""Shared builders for the platform-layer tests: the layer's Args from a committed stack file,
wired the way `infra/program.py` wires them (stand-in values for the AWS layer's outputs)."""

from __future__ import annotations

import functools

import pulumi_kubernetes as k8s

from infra.config import PlatformConfig, load_stack_file
from infra.platform.charts import AlertReceiver
from infra.platform.layer import (
    InClusterLayerArgs,
    ManagedLayerArgs,
    PlatformLayer,
    PlatformLayerArgs,
)
from platform_cli.offline import FAKE_ACCOUNT, Declared, run_program

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"
MSK_UUID = "1a2b3c4d-5e6f-7a8b-9c0d-ef1234567890-3"


def msk_cluster_name(cfg: PlatformConfig) -> str:
    return f"{cfg.name_prefix}-kafka"


def msk_cluster_arn(cfg: PlatformConfig) -> str:
    return f"arn:aws:kafka:{cfg.region}:{FAKE_ACCOUNT}:cluster/{msk_cluster_name(cfg)}/{MSK_UUID}"


def db_secret_arn(cfg: PlatformConfig) -> str:
    return f"arn:aws:secretsmanager:{cfg.region}:{FAKE_ACCOUNT}:secret:rds!db-{cfg.stack}-AbCdEf"


def app_secret_arns(cfg: PlatformConfig) -> list[str]:
    """The value-less secrets External Secrets syncs (infra.security.app_secrets)."""
    base = f"arn:aws:secretsmanager:{cfg.region}:{FAKE_ACCOUNT}:secret:{cfg.name_prefix}"
    return [f"{base}/notifier-channels-AbCdEf", f"{base}/alertmanager-receivers-AbCdEf"]


def eks_cluster_arn(cfg: PlatformConfig) -> str:
    return f"arn:aws:eks:{cfg.region}:{FAKE_ACCOUNT}:cluster/{cfg.name_prefix}-eks"


def audit_bucket_arn(cfg: PlatformConfig) -> str:
    return f"arn:aws:s3:::{cfg.name_prefix}-audit-archive"


def layer_args(
    cfg: PlatformConfig, provider: k8s.Provider, **overrides: object
) -> PlatformLayerArgs:
    """The flavour's Args variant for `cfg`, with `overrides` applied."""
    values: dict[str, object] = {
        "environment": cfg.stack,
        "region": cfg.region,
        "name_prefix": cfg.name_prefix,
        "k8s_provider": provider,
        "audit_bucket_name": f"{cfg.name_prefix}-audit-archive",
        "gitops_repo_url": cfg.gitops.repo_url,
        "gitops_revision": cfg.gitops.target_revision,
        "high_availability": cfg.tier.high_availability,
        "prometheus_retention": cfg.tier.prometheus.retention,
        "prometheus_storage_gib": cfg.tier.prometheus.storage_gib,
        "tags": {**cfg.base_tags, **cfg.tags},
    }
    if cfg.flavour == "local":
        values.update(
            database_name=cfg.database.database_name,
            postgres_version=cfg.database.engine_version,
            kafka_replicas=cfg.kafka.broker_count,
            kafka_replication_factor=cfg.kafka.replication_factor,
        )
        values.update(overrides)
        return InClusterLayerArgs(**values)  # type: ignore[arg-type]
    values.update(
        cluster_name=f"{cfg.name_prefix}-eks",
        audit_bucket_arn=audit_bucket_arn(cfg),
        kafka_bootstrap_servers=f"b-1.{msk_cluster_name(cfg)}.kafka.{cfg.region}.amazonaws.com:9098",
        msk_cluster_arn=msk_cluster_arn(cfg),
        msk_cluster_name=msk_cluster_name(cfg),
        msk_cluster_uuid=MSK_UUID,
        db_host=f"{cfg.name_prefix}-db.abc.{cfg.region}.rds.amazonaws.com",
        db_port=5432,
        db_name=cfg.database.database_name,
        db_secret_arn=db_secret_arn(cfg),
        db_secret_kms_key_arn=f"arn:aws:kms:{cfg.region}:{FAKE_ACCOUNT}:key/rds",
        app_secret_arns=app_secret_arns(cfg),
        app_secrets_kms_key_arn=f"arn:aws:kms:{cfg.region}:{FAKE_ACCOUNT}:key/secrets",
        cluster_arn=eks_cluster_arn(cfg),
        kubernetes_version=cfg.cluster.version,
        vpc_id="vpc-0123456789abcdef0",
        ebs_kms_key_arn=f"arn:aws:kms:{cfg.region}:{FAKE_ACCOUNT}:key/ebs",
        logs_kms_key_arn=f"arn:aws:kms:{cfg.region}:{FAKE_ACCOUNT}:key/logs",
        ingress=cfg.ingress,
        node_autoscaling=cfg.node_autoscaling,
        log_retention_days=cfg.observability.log_retention_days,
        alert_receivers=tuple(
            AlertReceiver(r.name, r.kind, tuple(r.severities), r.slack_channel)
            for r in cfg.observability.alert_receivers
        ),
        trace_storage_gib=cfg.observability.trace_storage_gib,
    )
    values.update(overrides)
    return ManagedLayerArgs(**values)  # type: ignore[arg-type]


def declare(env: str, **overrides: object) -> Declared:
    cfg = load_stack_file(env)

    def program() -> None:
        provider = k8s.Provider("k8s", kubeconfig=KUBECONFIG)
        PlatformLayer("platform", layer_args(cfg, provider, **overrides))

    return run_program(program, stack=env, region=cfg.region)


@functools.cache
def declared(env: str) -> Declared:
    """The layer as declared for a committed stack (cached: each run takes about a second)."""
    return declare(env)
