"""PreSync hook Jobs: Kafka topics as code, and each app's database migrations.

ArgoCD runs PreSync hooks before it applies the rest of the Application, on every sync, so both
Jobs must be idempotent (the topics job only creates or raises; migrations record their version).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from infra.contracts import APPS, DB_ROLES_SERVICE_ACCOUNT, FACTS_CONFIGMAP, TOPICS
from infra.gitops.catalog import (
    DB_ROLES_JOB_COMMAND,
    DB_ROLES_ROTATE_COMMAND,
    TOPICS_JOB_COMMAND,
    AppSpec,
    ImageCatalog,
    Resources,
)
from infra.gitops.manifests.common import (
    ARCHIVE_COMPONENT,
    DB_ROLES_JOB_NAME,
    MIGRATION_COMPONENT,
    TOPICS_JOB_NAME,
    WORKLOAD_COMPONENT,
    EnvContext,
    Manifest,
    metadata,
)
from infra.gitops.manifests.pods import container, env_from, pod_spec

PRESYNC = {
    "argocd.argoproj.io/hook": "PreSync",
    # Keep the finished Job for inspection until the next sync replaces it.
    "argocd.argoproj.io/hook-delete-policy": "BeforeHookCreation",
}
JOB_RESOURCES = Resources("50m", "128Mi", "500m", "256Mi")
TOPICS_SPEC_ENV = "TOPICS_SPEC"
TOPICS_SPEC_KEY = "topics.json"
TOPICS_JOB_IMAGE_APP = "events-api"
"""The topics job is `python -m apps.topics_job`, shipped in every app image; the API's is used."""


DB_ROLES_ROTATE_JOB = f"{DB_ROLES_JOB_NAME}-rotate"
"""The CronJob that rotates every app's login (also run once by hand after an RDS restore)."""


def topics_spec(ctx: EnvContext) -> str:
    """Every topic from the contracts (dead-letter topics included) with this env's replication."""
    return topics_spec_json(ctx.cfg.kafka.replication_factor, ctx.cfg.kafka.min_insync_replicas)


def topics_spec_json(replication_factor: int, min_insync_replicas: int) -> str:
    """The topics Job's `TOPICS_SPEC` (apps/topics_job/spec.py): every topic of the contracts.
    The Job is the topics' one owner: the clusters, compose and `platform local` all run it."""
    spec = {
        "replicationFactor": replication_factor,
        "minInsyncReplicas": min_insync_replicas,
        "topics": [
            {"name": t.name, "partitions": t.partitions, "retentionMs": t.retention_ms}
            for t in sorted(TOPICS, key=lambda t: t.name)
        ],
    }
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def topics_config_map(ctx: EnvContext, wave: int) -> Manifest:
    """The spec as a regular resource: when it changes the Application goes OutOfSync, and the
    sync that follows runs the PreSync Job (which carries the same spec inline, because hooks run
    before regular resources are applied)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(TOPICS_JOB_NAME, TOPICS_JOB_NAME, wave=wave),
        "data": {TOPICS_SPEC_KEY: topics_spec(ctx)},
    }


def _job(name: str, app: str, component: str, template: Manifest) -> Manifest:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(name, app, component=component, annotations=PRESYNC),
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": 900,
            "template": template,
        },
    }


def _platform_presync_job(
    name: str,
    service_account: str,
    command: Sequence[str],
    env: Manifest,
    ctx: EnvContext,
    images: ImageCatalog,
) -> Manifest:
    """A PreSync Job of the platform itself (not of one app): the API's image, the facts, and
    one environment variable carrying what the command works through."""
    main = container(
        name,
        images.image(ctx.env, TOPICS_JOB_IMAGE_APP),
        list(command),
        JOB_RESOURCES,
        [{"configMapRef": {"name": FACTS_CONFIGMAP}}],
        env=[env],
    )
    template = {
        "metadata": {"labels": metadata(name, name)["labels"]},
        "spec": pod_spec(service_account, [main], restartPolicy="Never"),
    }
    return _job(name, name, WORKLOAD_COMPONENT, template)


def topics_job(ctx: EnvContext, images: ImageCatalog) -> Manifest:
    env = {"name": TOPICS_SPEC_ENV, "value": topics_spec(ctx)}
    return _platform_presync_job(
        TOPICS_JOB_NAME, TOPICS_JOB_NAME, TOPICS_JOB_COMMAND, env, ctx, images
    )


DB_ROLES_SECRETS_ENV = "DB_ROLES_SECRETS"


def db_roles_secrets(ctx: EnvContext) -> str:
    """App package -> its credentials secret: what the db-roles Job provisions."""
    secrets = {
        app.package: secret
        for app in APPS
        if app.uses_database and (secret := ctx.db_credentials_secret(app.name))
    }
    return json.dumps(secrets, sort_keys=True)


def db_roles_job(ctx: EnvContext, images: ImageCatalog) -> Manifest:
    """Each app's own database roles and first credentials, before any migration runs
    (`python -m apps.db_roles ensure`, shipped in every image; the API's is used)."""
    env = {"name": DB_ROLES_SECRETS_ENV, "value": db_roles_secrets(ctx)}
    return _platform_presync_job(
        DB_ROLES_JOB_NAME, DB_ROLES_SERVICE_ACCOUNT, DB_ROLES_JOB_COMMAND, env, ctx, images
    )


DB_ROTATION_SCHEDULE = "23 3 * * 1"
"""Weekly, Monday 03:23 UTC: each app's login moves to its other role with a new password."""


def _cron_job(
    name: str,
    app: str,
    component: str,
    wave: int,
    schedule: str,
    starting_deadline_seconds: int,
    job_spec: Manifest,
) -> Manifest:
    """A CronJob in UTC that never overlaps itself (`Forbid`), keeping the last three runs."""
    labels = metadata(name, app, component=component)["labels"]
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, app, component=component, wave=wave),
        "spec": {
            "schedule": schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": starting_deadline_seconds,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            # A copy, so the YAML dump writes plain mappings instead of anchors/aliases.
            "jobTemplate": {"metadata": {"labels": dict(labels)}, "spec": job_spec},
        },
    }


def db_roles_rotation_cron_job(ctx: EnvContext, images: ImageCatalog, wave: int) -> Manifest:
    """`python -m apps.db_roles rotate` on a schedule (alternating users: the previous login keeps
    working until the next rotation, so open connections and pods that read the secret a moment
    earlier never fail). `Forbid`: two rotations must not race on one app's roles."""
    job = db_roles_job(ctx, images)
    template = job["spec"]["template"]
    template["spec"]["containers"][0]["command"] = list(DB_ROLES_ROTATE_COMMAND)
    return _cron_job(
        DB_ROLES_ROTATE_JOB,
        DB_ROLES_JOB_NAME,
        WORKLOAD_COMPONENT,
        wave,
        DB_ROTATION_SCHEDULE,
        3600,
        {"backoffLimit": 2, "activeDeadlineSeconds": 900, "template": template},
    )


def _app_job_pod(
    spec: AppSpec, ctx: EnvContext, images: ImageCatalog, verb: str, component: str
) -> tuple[str, Manifest]:
    """The name (`<app>-<verb>`) and pod template of a Job that runs one of the app's verbs in
    the app's image, with its facts and database login."""
    contract = spec.contract
    name = f"{contract.name}-{verb}"
    main = container(
        verb,
        images.image(ctx.env, contract.name),
        list(spec.command(verb)),
        JOB_RESOURCES,
        env_from(contract.name, uses_database=True, shared_db_secret=not ctx.own_db_logins),
    )
    template = {
        "metadata": {"labels": metadata(name, contract.name, component=component)["labels"]},
        "spec": pod_spec(contract.service_account, [main], restartPolicy="Never"),
    }
    return name, template


def migration_job(spec: AppSpec, ctx: EnvContext, images: ImageCatalog) -> Manifest:
    name, template = _app_job_pod(spec, ctx, images, "migrate", MIGRATION_COMPONENT)
    return _job(name, spec.name, MIGRATION_COMPONENT, template)


ARCHIVE_SCHEDULE = "17 * * * *"
"""Hourly, a quarter past: the previous hour's window is closed by then (windows are 3600 s)."""


def archive_cron_job(spec: AppSpec, ctx: EnvContext, images: ImageCatalog, wave: int) -> Manifest:
    """The audit app's S3 archive of closed windows, on a schedule.

    `audit archive` is idempotent (finished windows are recorded; object keys are fixed per
    window), so a missed or repeated run only catches up; `Forbid` keeps two runs from racing.
    """
    name, template = _app_job_pod(spec, ctx, images, "archive", ARCHIVE_COMPONENT)
    job_spec = {"backoffLimit": 2, "activeDeadlineSeconds": 1800, "template": template}
    return _cron_job(name, spec.name, ARCHIVE_COMPONENT, wave, ARCHIVE_SCHEDULE, 600, job_spec)
