"""Names shared by the Pulumi program, the GitOps renderer and the bundled apps.

Each fact here is defined once (design principle 1). The platform layer writes the facts channel,
the renderer wires workloads to it, and the apps read the same keys from their environment, so a
rename happens in one place and the tests catch every consumer that did not follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeVar

V = TypeVar("V")

ENVIRONMENTS: tuple[str, ...] = ("localstack", "dev", "staging", "prod")
"""Every stack of the Pulumi project; each has `stacks/Pulumi.<env>.yaml` and `gitops/<env>/`."""

# --- Kubernetes namespaces ----------------------------------------------------------------------
# Created by the platform layer (except kube-system) and referred to by the GitOps manifests
# (network policies, Prometheus's namespace selector), the teardown checks and the CLI.

APP_NAMESPACE = "apps"
"""The one namespace the bundled apps run in; ArgoCD's AppProject allows only this destination."""
ARGOCD_NAMESPACE = "argocd"
MONITORING_NAMESPACE = "monitoring"
TRACING_NAMESPACE = "tracing"
EXTERNAL_SECRETS_NAMESPACE = "external-secrets"
KEDA_NAMESPACE = "keda"
LOGGING_NAMESPACE = "logging"
"""Fluent Bit (the log shipper, EKS)."""
KUBE_SYSTEM_NAMESPACE = "kube-system"
"""Exists on every cluster; never created nor deleted by us."""
KAFKA_NAMESPACE = "kafka"
"""The in-cluster Kafka (Strimzi operator and its cluster; local flavour)."""
CNPG_OPERATOR_NAMESPACE = "cnpg-system"
DATABASE_NAMESPACE = "database"
"""The in-cluster PostgreSQL (the CloudNativePG cluster; local flavour)."""

# --- Ports -------------------------------------------------------------------------------------

MSK_IAM_PORT = 9098
"""MSK's SASL/IAM listener (TLS)."""
KAFKA_PLAINTEXT_PORT = 9092
"""The in-cluster broker's plain listener."""
POSTGRES_PORT = 5432

REQUIRED_TAG_KEYS: tuple[str, ...] = ("project", "stack", "managed-by")
"""Base tags put on every taggable AWS resource (user tags are merged after these)."""


# --- The facts channel -------------------------------------------------------------------------
# Facts that only `pulumi up` knows reach the apps through ONE channel: a ConfigMap and a Secret
# that Pulumi manages in the app namespace. Workloads mount both with `envFrom`, so each key below
# is also the environment variable name the apps read.

FACTS_CONFIGMAP = "platform-facts"
"""ConfigMap (in APP_NAMESPACE) holding the non-secret facts."""

FACTS_DB_SECRET = "platform-db"
"""Secret (in APP_NAMESPACE) holding the database credentials, synced by External Secrets."""


class Fact(StrEnum):
    """Keys of the `platform-facts` ConfigMap; each is also an app environment variable."""

    ENVIRONMENT = "PLATFORM_ENVIRONMENT"
    AWS_REGION = "AWS_REGION"
    KAFKA_BOOTSTRAP_SERVERS = "KAFKA_BOOTSTRAP_SERVERS"
    # "iam" on MSK (SASL_SSL + AWS_MSK_IAM), "plaintext" locally
    KAFKA_AUTH_MODE = "KAFKA_AUTH_MODE"
    DB_HOST = "DB_HOST"
    DB_PORT = "DB_PORT"
    DB_NAME = "DB_NAME"
    DB_SECRET_REF = "DB_SECRET_REF"  # ARN of the RDS-managed secret, or the CNPG secret's name
    # libpq's sslmode: verify-full on RDS (the image ships the RDS CA bundle), require in-cluster
    DB_SSLMODE = "DB_SSLMODE"
    OTEL_EXPORTER_OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
    AUDIT_ARCHIVE_BUCKET = "AUDIT_ARCHIVE_BUCKET"


class DbSecretKey(StrEnum):
    """Keys of the `platform-db` Secret."""

    USER = "DB_USER"
    PASSWORD = "DB_PASSWORD"


KAFKA_AUTH_MODES: tuple[str, ...] = ("iam", "plaintext")


def app_environment(
    facts: Mapping[Fact, V],
    db_credentials: Mapping[DbSecretKey, V] | None = None,
    *,
    complete: bool = True,
) -> dict[str, V]:
    """The facts channel as an app sees it: one environment variable per `Fact` (the
    `platform-facts` ConfigMap) and per `DbSecretKey` (the `platform-db` Secret), named by its key.

    The one place this mapping is written. `FactsChannel` builds the ConfigMap from it (without
    credentials: External Secrets writes those), and every run without a cluster (`platform
    local`, compose.yaml, the deploy rehearsal, the bench, the tests) sets the apps' environment
    from it, so an app reads the same variables wherever it runs.

    `complete` (the default) requires every `Fact`, and both credentials when any are given; a
    partial environment (`complete=False`) is for tests that give an app only its database.
    """
    fact_keys = {fact.value for fact in Fact}
    secret_keys = {key.value for key in DbSecretKey}
    unknown = [str(k) for k in facts if str(k) not in fact_keys]
    unknown += [str(k) for k in (db_credentials or {}) if str(k) not in secret_keys]
    if unknown:
        raise ValueError(
            f"facts channel: unknown key(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(sorted(fact_keys | secret_keys))}"
        )
    if complete:
        missing = [fact.value for fact in Fact if fact not in facts]
        if db_credentials is not None:
            missing += [key.value for key in DbSecretKey if key not in db_credentials]
        if missing:
            raise ValueError(f"facts channel: missing {', '.join(missing)}; every key is required")
    credentials = db_credentials or {}
    env = {fact.value: facts[fact] for fact in Fact if fact in facts}
    env.update({key.value: credentials[key] for key in DbSecretKey if key in credentials})
    return env


# --- The notifier's channel credentials ------------------------------------------------------
# Routes (which events go to which channel) are plain settings in the notifier's config map;
# the credentials they need come from this Secret, synced by External Secrets from Secrets
# Manager (AWS flavour) or from a Secret of the same name in the secret store's namespace
# (local flavour). Each key is also the notifier's environment variable.

NOTIFIER_CHANNELS_SECRET = "notifier-channels"
"""Secret (in APP_NAMESPACE) holding the channel credentials the routes of the env name."""

NOTIFIER_CHANNEL_KEYS: dict[str, tuple[str, ...]] = {
    # The webhook's signing secret is required in deployed envs: receivers verify the sender.
    "webhook": ("NOTIFIER_WEBHOOK_URL", "NOTIFIER_WEBHOOK_SIGNING_SECRET"),
    "slack": ("NOTIFIER_SLACK_WEBHOOK_URL",),
    "discord": ("NOTIFIER_DISCORD_WEBHOOK_URL",),
    "telegram": ("NOTIFIER_TELEGRAM_BOT_TOKEN", "NOTIFIER_TELEGRAM_CHAT_ID"),
    "whatsapp": (
        "NOTIFIER_WHATSAPP_ACCESS_TOKEN",
        "NOTIFIER_WHATSAPP_PHONE_NUMBER_ID",
        "NOTIFIER_WHATSAPP_RECIPIENT",
    ),
}
"""The notifier settings each channel needs (apps/notifier/settings.py reads these names)."""


def notifier_channels_secret_id(name_prefix: str) -> str:
    """The Secrets Manager secret (JSON, one property per key above) of one environment."""
    return f"{name_prefix}/{NOTIFIER_CHANNELS_SECRET}"


# --- Kafka topics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """A Kafka topic the platform creates (topics are never auto-created: MSK disables that)."""

    name: str
    partitions: int
    retention_ms: int
    """How long records are kept; dead-letter topics keep theirs longer for investigation."""


SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000

EVENTS_TOPIC = Topic("events", partitions=6, retention_ms=SEVEN_DAYS_MS)
TASKS_TOPIC = Topic("tasks", partitions=6, retention_ms=SEVEN_DAYS_MS)
REMINDERS_TOPIC = Topic("reminders", partitions=6, retention_ms=SEVEN_DAYS_MS)
"""`task.reminder.due` envelopes, published by the reminders app, keyed by task id."""
NOTIFIER_DLQ = Topic("notifier.dlq", partitions=3, retention_ms=THIRTY_DAYS_MS)
AUDIT_DLQ = Topic("audit.dlq", partitions=3, retention_ms=THIRTY_DAYS_MS)
REMINDERS_DLQ = Topic("reminders.dlq", partitions=3, retention_ms=THIRTY_DAYS_MS)

TOPICS: tuple[Topic, ...] = (
    EVENTS_TOPIC,
    TASKS_TOPIC,
    REMINDERS_TOPIC,
    NOTIFIER_DLQ,
    AUDIT_DLQ,
    REMINDERS_DLQ,
)


# --- The bundled apps --------------------------------------------------------------------------


@dataclass(frozen=True)
class AppContract:
    """What the platform must provide an app: topics, group, database, bucket and facts."""

    name: str
    kind: Literal["producer", "consumer"]
    port: int
    produces: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    consumer_group: str | None = None
    dead_letter_topic: str | None = None
    uses_database: bool = True
    uses_archive_bucket: bool = False
    facts: tuple[Fact, ...] = ()

    @property
    def package(self) -> str:
        """The app's Python package under `apps/` (also the image's `APP` build argument)."""
        return self.name.replace("-", "_")

    @property
    def service_account(self) -> str:
        """The Kubernetes ServiceAccount; the Pod Identity association binds to this name."""
        return self.name

    @property
    def all_topics(self) -> tuple[str, ...]:
        extra = (self.dead_letter_topic,) if self.dead_letter_topic else ()
        return tuple(sorted({*self.produces, *self.consumes, *extra}))


_COMMON_FACTS = (
    Fact.ENVIRONMENT,
    Fact.AWS_REGION,
    Fact.KAFKA_BOOTSTRAP_SERVERS,
    Fact.KAFKA_AUTH_MODE,
    Fact.DB_HOST,
    Fact.DB_PORT,
    Fact.DB_NAME,
    Fact.DB_SSLMODE,
    Fact.OTEL_EXPORTER_OTLP_ENDPOINT,
)


def _app(
    name: str,
    kind: Literal["producer", "consumer"],
    *,
    port: int,
    extra_facts: tuple[Fact, ...] = (),
    **fields: Any,
) -> AppContract:
    """A bundled app: every one gets the common facts, plus its own `extra_facts`."""
    return AppContract(
        name=name, kind=kind, port=port, facts=(*_COMMON_FACTS, *extra_facts), **fields
    )


def _consumer(
    name: str, *, port: int, consumes: tuple[Topic, ...], dead_letter: Topic, **fields: Any
) -> AppContract:
    """A Kafka consumer app: its consumer group carries its name."""
    return _app(
        name,
        "consumer",
        port=port,
        consumes=tuple(topic.name for topic in consumes),
        consumer_group=name,
        dead_letter_topic=dead_letter.name,
        **fields,
    )


APPS: tuple[AppContract, ...] = (
    _app("events-api", "producer", port=8000, produces=(EVENTS_TOPIC.name, TASKS_TOPIC.name)),
    _consumer(
        "notifier",
        port=8001,
        consumes=(EVENTS_TOPIC, TASKS_TOPIC, REMINDERS_TOPIC),
        dead_letter=NOTIFIER_DLQ,
    ),
    _consumer(
        "audit",
        port=8002,
        consumes=(EVENTS_TOPIC, TASKS_TOPIC, REMINDERS_TOPIC),
        dead_letter=AUDIT_DLQ,
        uses_archive_bucket=True,
        extra_facts=(Fact.AUDIT_ARCHIVE_BUCKET,),
    ),
    # Schedules task reminders (from task changes) in PostgreSQL and publishes each one when
    # it falls due; the notifier delivers them, audit records them.
    _consumer(
        "reminders",
        port=8003,
        consumes=(TASKS_TOPIC,),
        dead_letter=REMINDERS_DLQ,
        produces=(REMINDERS_TOPIC.name,),
    ),
)

APP_NAMES: tuple[str, ...] = tuple(app.name for app in APPS)


def app_contract(name: str) -> AppContract:
    """Return the contract of one bundled app, or fail naming the allowed apps."""
    for app in APPS:
        if app.name == name:
            return app
    raise KeyError(f"unknown app {name!r}; allowed: {', '.join(APP_NAMES)}")


def topic(name: str) -> Topic:
    for t in TOPICS:
        if t.name == name:
            return t
    raise KeyError(f"unknown topic {name!r}; allowed: {', '.join(t.name for t in TOPICS)}")


# --- GitOps and ArgoCD -------------------------------------------------------------------------
# Pulumi creates the AppProject and the root Application; the renderer writes what the root app
# syncs. The root app watches `gitops/<env>` WITHOUT recursion: the top level of that folder holds
# only the child ArgoCD Applications (one per app, plus shared ones), and each child Application
# points at its own sub-folder `gitops/<env>/<name>/`.

GITOPS_DIR = "gitops"
ARGOCD_API_GROUP = "argoproj.io"
ARGOCD_API_VERSION = f"{ARGOCD_API_GROUP}/v1alpha1"
"""apiVersion of Application and AppProject."""
ARGOCD_FINALIZER = "resources-finalizer.argocd.argoproj.io"
"""On an Application: deleting it deletes what it deployed (no orphans)."""
IN_CLUSTER_API_SERVER = "https://kubernetes.default.svc"
"""The cluster's own API server, as Argo CD destinations and in-cluster clients name it."""
ARGOCD_PROJECT = "platform-apps"
"""The AppProject every child Application belongs to (sources: this repo; destination: apps ns)."""


def gitops_path(env: str) -> str:
    """Repository path the environment's root Application syncs."""
    if env not in ENVIRONMENTS:
        raise KeyError(f"unknown environment {env!r}; allowed: {', '.join(ENVIRONMENTS)}")
    return f"{GITOPS_DIR}/{env}"


OTLP_HTTP_PORT = 4318
"""Port of the in-cluster OTLP/HTTP endpoint the apps export traces to."""

DB_ROLES_SERVICE_ACCOUNT = "db-roles"
"""ServiceAccount (in APP_NAMESPACE) of the PreSync Job that creates each app's database roles and
publishes their credentials (`python -m apps.db_roles`); the only workload whose Pod Identity role
may read the RDS-managed master secret."""


def db_credentials_secret_id(name_prefix: str, app: str) -> str:
    """The Secrets Manager secret (JSON username/password) an app logs in to PostgreSQL with."""
    return f"{name_prefix}/db/{app}"


TOPICS_JOB_SERVICE_ACCOUNT = "kafka-topics"
"""ServiceAccount (in APP_NAMESPACE) of the PreSync Job that creates and updates the topics; on MSK
it needs a Pod Identity association allowing connect plus create/describe/alter topic and their
dynamic configuration on this cluster's topics."""
