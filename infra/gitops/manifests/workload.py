"""Per-app ServiceAccount, settings ConfigMap, Deployment, Service and PodDisruptionBudget."""

from __future__ import annotations

import json

from infra.contracts import EVENTS_TOPIC, REMINDERS_TOPIC, TASKS_TOPIC, AppContract
from infra.gitops.catalog import AppSpec, ImageCatalog
from infra.gitops.manifests.common import (
    EnvContext,
    Manifest,
    app_object,
    metadata,
    selector,
)
from infra.gitops.manifests.pods import config_map_name, container, env_from, pod_spec

HTTP_PORT_NAME = "http"


def service_account(name: str, app: str, wave: int) -> Manifest:
    """Named exactly as the Pod Identity association the platform layer creates for it."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(name, app, wave=wave),
        "automountServiceAccountToken": False,
    }


def settings(spec: AppSpec, env: str, db_credentials_secret: str | None = None) -> dict[str, str]:
    """The app's own settings (env names from the app contract): topics, group, DLQ, port, logs,
    and on AWS the Secrets Manager secret holding its own database login."""
    contract = spec.contract
    values = {
        "EVENTS_TOPIC": EVENTS_TOPIC.name,
        "TASKS_TOPIC": TASKS_TOPIC.name,
        "REMINDERS_TOPIC": REMINDERS_TOPIC.name,
        "PORT": str(contract.port),
        "LOG_LEVEL": spec.level(env),
        "OTEL_SERVICE_NAME": contract.name,
    }
    if contract.consumer_group:
        values["CONSUMER_GROUP"] = contract.consumer_group
    if contract.dead_letter_topic:
        values["DEAD_LETTER_TOPIC"] = contract.dead_letter_topic
    if db_credentials_secret and contract.uses_database:
        values["DB_CREDENTIALS_SECRET"] = db_credentials_secret
    if spec.routes:
        routes = [route.to_setting() for route in spec.routes[env]]
        values["NOTIFIER_ROUTES"] = json.dumps(routes, sort_keys=True)
    return values


def settings_config_map(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(config_map_name(spec.name), spec.name, wave=wave),
        "data": settings(spec, ctx.env, ctx.db_credentials_secret(spec.name)),
    }


def _probe(path: str, *, period: int, failures: int, timeout: int = 2) -> Manifest:
    return {
        "httpGet": {"path": path, "port": HTTP_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _topology_spread(app: str) -> list[Manifest]:
    # ScheduleAnyway: spreading must not leave a pod Pending when a zone is down or on a
    # single-zone local cluster (kind has no zone labels); the scheduler still prefers the spread.
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector(app)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def deployment(spec: AppSpec, ctx: EnvContext, images: ImageCatalog, wave: int) -> Manifest:
    contract = spec.contract
    sizing = spec.sizing[ctx.env]
    main = container(
        contract.name,
        images.image(ctx.env, contract.name),
        list(spec.command()),
        spec.resources,
        env_from(
            contract.name,
            uses_database=contract.uses_database,
            channels=bool(spec.routes),
            shared_db_secret=not ctx.own_db_logins,
        ),
        ports=[{"name": HTTP_PORT_NAME, "containerPort": contract.port, "protocol": "TCP"}],
        startupProbe=_probe(
            spec.probes.liveness_path, period=2, failures=spec.probes.startup_failure_threshold
        ),
        livenessProbe=_probe(spec.probes.liveness_path, period=10, failures=3),
        readinessProbe=_probe(spec.probes.readiness_path, period=5, failures=2),
    )
    # With high availability a rollout adds a pod before removing one, so capacity never dips.
    max_unavailable = 0 if ctx.high_availability else 1
    body = {
        "replicas": sizing.replicas,
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector(contract.name)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": max_unavailable},
        },
        "template": {
            "metadata": {"labels": metadata(contract.name, contract.name)["labels"]},
            "spec": pod_spec(
                contract.service_account,
                [main],
                terminationGracePeriodSeconds=30,
                topologySpreadConstraints=_topology_spread(contract.name),
            ),
        },
    }
    return app_object("apps/v1", "Deployment", contract.name, wave, body)


def service(contract: AppContract, wave: int) -> Manifest:
    body = {
        "type": "ClusterIP",
        "selector": selector(contract.name),
        "ports": [
            {
                "name": HTTP_PORT_NAME,
                "port": contract.port,
                "targetPort": HTTP_PORT_NAME,
                "protocol": "TCP",
            }
        ],
    }
    return app_object("v1", "Service", contract.name, wave, body)


def disruption_budget(contract: AppContract, wave: int) -> Manifest:
    # maxUnavailable (not minAvailable) so a single-replica dev app never blocks a node drain.
    body = {"maxUnavailable": 1, "selector": {"matchLabels": selector(contract.name)}}
    return app_object("policy/v1", "PodDisruptionBudget", contract.name, wave, body)
