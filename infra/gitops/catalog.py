"""The typed catalog of the bundled apps: everything the renderer needs that is not a platform fact.

Ports, topics, consumer groups and the facts an app reads come from `infra.contracts` (defined
once, shared with the platform layer and the apps). This module adds what only the deployment
needs: per-env sizing and autoscaling bounds, resources, probes, commands, log levels, ingress
hosts, and the image registry and tag per env (in `images.json`, the one file `set-image` edits).

`check_catalog()` returns every problem as "<field>: <what is wrong>; allowed: <values>" so a bad
edit fails before anything is written.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import load_stack_file
from infra.contracts import (
    APP_NAMES,
    ENVIRONMENTS,
    NOTIFIER_CHANNEL_KEYS,
    AppContract,
    app_contract,
    topic,
)

IMAGES_FILE = Path(__file__).with_name("images.json")

# Immutable tag shapes: a git commit id (7 to 40 hex digits, as CI tags its builds) or a semantic
# version. Branch-like names ("latest", "main", "stable") can move, so a promotion could silently
# change what runs; they are refused.
_GIT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
MUTABLE_TAGS = frozenset({"latest", "main", "master", "stable", "edge", "dev", "head", "nightly"})
ALLOWED_TAG_SHAPES = "a git commit id (7-40 lowercase hex digits) or a semver (1.2.3, v1.2.3-rc.1)"
LOG_LEVELS: tuple[str, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Mi|Gi|Ki)?$")


class CatalogError(ValueError):
    """The catalog or images file is invalid; the message lists each field and what is allowed."""


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not an immutable image tag, or None when it is."""
    if tag.lower() in MUTABLE_TAGS:
        return f"{tag!r} is a mutable tag; allowed: {ALLOWED_TAG_SHAPES}"
    if _GIT_SHA.match(tag) or _SEMVER.match(tag):
        return None
    return f"{tag!r} is not an immutable tag; allowed: {ALLOWED_TAG_SHAPES}"


def app_command(contract: AppContract, verb: str) -> tuple[str, ...]:
    """A module the image ships (`apps/Dockerfile` copies `apps/<package>/`), never a console
    script: the images install the app's requirements, not this project, so no `events-api`
    executable exists in them. The deploy rehearsal runs every rendered command in its image."""
    return ("python", "-m", f"apps.{contract.package}", verb)


TOPICS_JOB_COMMAND: tuple[str, ...] = ("python", "-m", "apps.topics_job")
DB_ROLES_JOB_COMMAND: tuple[str, ...] = ("python", "-m", "apps.db_roles", "ensure")
DB_ROLES_ROTATE_COMMAND: tuple[str, ...] = ("python", "-m", "apps.db_roles", "rotate")
"""The PreSync db-roles Job's command; `apps/db_roles` is shipped in every app image."""
"""The PreSync topics Job's command; `apps/topics_job` is shipped in every app image."""


@dataclass(frozen=True)
class Resources:
    """Container requests and limits (Kubernetes quantities). Limits are required."""

    cpu_request: str
    memory_request: str
    cpu_limit: str | None
    memory_limit: str | None


@dataclass(frozen=True)
class Sizing:
    """Replica bounds in one env. `replicas` is the Deployment's starting count; the HPA (API) or
    KEDA (consumers) moves it between `min_replicas` and `max_replicas`."""

    replicas: int
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class Probes:
    """HTTP probe paths on the app's port (consumers serve them from a small health server)."""

    liveness_path: str = "/healthz"
    readiness_path: str = "/readyz"
    metrics_path: str = "/metrics"
    startup_failure_threshold: int = 30
    """With a 2 s period this gives a slow start (migrations, broker metadata) one minute."""


@dataclass(frozen=True)
class ChannelRoute:
    """One notifier route (apps/notifier/routing.py): events whose type matches `types` and
    whose category is in `categories` (empty: any) go to `channels`."""

    channels: tuple[str, ...]
    types: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def to_setting(self) -> dict[str, list[str]]:
        setting = {"channels": list(self.channels)}
        if self.types:
            setting["types"] = list(self.types)
        if self.categories:
            setting["categories"] = list(self.categories)
        return setting


@dataclass(frozen=True)
class AppSpec:
    """How one bundled app is deployed; what it *is* (ports, topics, facts) is in its contract."""

    name: str
    main_verb: str
    """The verb the app's workload runs (`serve` for the API, `run` for the consumers)."""
    sizing: dict[str, Sizing]
    resources: Resources
    probes: Probes = Probes()
    log_level: dict[str, str] = field(default_factory=dict)
    """Per-env log level; envs not listed use INFO."""
    lag_threshold: int = 100
    """Consumers: target lag per replica for KEDA (records)."""
    target_cpu_percent: int = 70
    """The API: HPA CPU utilisation target."""
    public_paths: tuple[str, ...] = ()
    """Path prefixes published through the env's Ingress (hosts: `platform:ingress.hosts`); an
    Ingress is rendered only for apps that set this. Health, metrics and docs are never listed:
    they stay inside the cluster."""
    metrics_prefix: str = ""
    """Prefix of the app's Prometheus metric names (`apps/<app>/metrics.py`)."""
    routes: dict[str, tuple[ChannelRoute, ...]] = field(default_factory=dict)
    """The notifier: its routes per env; their channels' credentials come from the
    `notifier-channels` Secret (see `infra.contracts.NOTIFIER_CHANNEL_KEYS`)."""

    def channels(self, env: str) -> tuple[str, ...]:
        """Every channel the env's routes name, in first-use order."""
        names = [c for route in self.routes.get(env, ()) for c in route.channels]
        return tuple(dict.fromkeys(names))

    @property
    def contract(self) -> AppContract:
        return app_contract(self.name)

    def command(self, verb: str | None = None) -> tuple[str, ...]:
        """The container command for one of the app's verbs (default: its main workload)."""
        return app_command(self.contract, verb or self.main_verb)

    def level(self, env: str) -> str:
        return self.log_level.get(env, "INFO")


@dataclass(frozen=True)
class ImageCatalog:
    """Contents of `images.json`: a registry per env, a tag per env and app, and the promotions
    recorded by `set-image` (a prod tag equal to dev's is legitimate only when promoted)."""

    registries: dict[str, str]
    tags: dict[str, dict[str, str]]
    promoted: dict[str, dict[str, str]]

    def image(self, env: str, app: str) -> str:
        return f"{self.registries[env]}/{app}:{self.tags[env][app]}"

    def to_json(self) -> str:
        data = {"promoted": self.promoted, "registries": self.registries, "tags": self.tags}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Catalog:
    apps: tuple[AppSpec, ...]
    images: ImageCatalog

    def app(self, name: str) -> AppSpec:
        for spec in self.apps:
            if spec.name == name:
                return spec
        raise CatalogError(f"app: {name!r} is unknown; allowed: {', '.join(APP_NAMES)}")


def _sizing(dev: tuple[int, int, int], other: tuple[int, int, int]) -> dict[str, Sizing]:
    """dev and localstack are small; staging and prod share the production shape."""
    small, large = Sizing(*dev), Sizing(*other)
    return {"localstack": small, "dev": small, "staging": large, "prod": large}


DEBUG_IN_DEV_STACKS = {"localstack": "DEBUG", "dev": "DEBUG"}
"""Log levels of every app: DEBUG where nobody but the team reads the logs, INFO elsewhere."""


def _consumer(name: str, **fields: Any) -> AppSpec:
    """A Kafka consumer app: `run` is its workload, its metrics carry its name, and all consumers
    share one shape (at least two replicas outside dev, so a rollout or a node drain never
    leaves a topic unconsumed)."""
    return AppSpec(
        name=name,
        main_verb="run",
        metrics_prefix=name,
        sizing=_sizing((1, 1, 2), (2, 2, 6)),
        resources=Resources("50m", "128Mi", "500m", "256Mi"),
        log_level=dict(DEBUG_IN_DEV_STACKS),
        **fields,
    )


APP_SPECS: tuple[AppSpec, ...] = (
    AppSpec(
        name="events-api",
        main_verb="serve",
        # At least two replicas outside dev so a node drain or a rollout never drops the API.
        sizing={
            "localstack": Sizing(1, 1, 2),
            "dev": Sizing(1, 1, 3),
            "staging": Sizing(2, 2, 6),
            "prod": Sizing(3, 3, 10),
        },
        resources=Resources("100m", "192Mi", "1", "384Mi"),
        log_level=dict(DEBUG_IN_DEV_STACKS),
        # The API and the web console (events-api serves it at the same origin).
        public_paths=("/api/", "/console/"),
        metrics_prefix="events_api",
    ),
    _consumer(
        "notifier",
        # Every event, task change and reminder to the team's webhook; prod also pages Slack on
        # alerts and posts due reminders there.
        routes={
            **{env: (ChannelRoute(channels=("webhook",)),) for env in ENVIRONMENTS},
            "prod": (
                ChannelRoute(channels=("webhook",)),
                ChannelRoute(channels=("slack",), types=("event.received",), categories=("alert",)),
                ChannelRoute(channels=("slack",), types=("task.reminder.due",)),
            ),
        },
    ),
    _consumer("audit"),
    # Two replicas outside dev: one is always claiming due reminders during a rollout or a node
    # drain (they share the schedule through FOR UPDATE SKIP LOCKED). The schedule is in
    # PostgreSQL, so memory does not grow with it (bench/reminders_capacity.py).
    _consumer("reminders"),
)


# --- images.json --------------------------------------------------------------------------------


def load_images(path: Path = IMAGES_FILE) -> ImageCatalog:
    """Read `images.json`; shape errors name the field (values are checked by `check_catalog`)."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"{path.name}: cannot read ({exc})") from None
    problems = []
    for key in ("registries", "tags", "promoted"):
        if not isinstance(raw.get(key), dict):
            problems.append(f"{path.name}: {key}: missing or not a mapping")
    extra = sorted(set(raw) - {"registries", "tags", "promoted"})
    if extra:
        problems.append(f"{path.name}: unknown keys {extra}; allowed: registries, tags, promoted")
    if problems:
        raise CatalogError("\n".join(problems))
    return ImageCatalog(
        registries={str(k): str(v) for k, v in raw["registries"].items()},
        tags={
            str(env): {str(a): str(t) for a, t in apps.items()} for env, apps in raw["tags"].items()
        },
        promoted={
            str(env): {str(a): str(t) for a, t in apps.items()}
            for env, apps in raw["promoted"].items()
        },
    )


def load_catalog(images_path: Path = IMAGES_FILE) -> Catalog:
    """The catalog the renderer uses, validated (raises CatalogError listing every problem)."""
    catalog = Catalog(apps=APP_SPECS, images=load_images(images_path))
    ensure_valid(catalog)
    return catalog


# --- validation ---------------------------------------------------------------------------------


def _consumed_partitions(contract: AppContract) -> int:
    """The fewest partitions among the topics a consumer reads: more replicas would sit idle."""
    return min(topic(name).partitions for name in contract.consumes)


def _check_resources(prefix: str, res: Resources) -> list[str]:
    problems = []
    for name in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
        value = getattr(res, name)
        if value is None:
            problems.append(
                f"{prefix}.resources.{name}: missing; allowed: a Kubernetes quantity "
                "(limits are required so one app cannot starve a node)"
            )
        elif not _QUANTITY.match(value):
            problems.append(
                f"{prefix}.resources.{name}: {value!r}; allowed: a quantity like 100m, 1, 256Mi"
            )
    return problems


def _check_sizing(prefix: str, spec: AppSpec) -> list[str]:
    problems = []
    missing = [env for env in ENVIRONMENTS if env not in spec.sizing]
    if missing:
        problems.append(f"{prefix}.sizing: no entry for {missing}; allowed: {list(ENVIRONMENTS)}")
    for env, sizing in sorted(spec.sizing.items()):
        where = f"{prefix}.sizing.{env}"
        if env not in ENVIRONMENTS:
            problems.append(f"{where}: unknown env; allowed: {', '.join(ENVIRONMENTS)}")
            continue
        if sizing.replicas < 1 or sizing.min_replicas < 1:
            problems.append(
                f"{where}.replicas: {sizing.replicas} (min {sizing.min_replicas}); allowed: >= 1"
            )
        if sizing.min_replicas > sizing.max_replicas:
            problems.append(
                f"{where}.min_replicas: {sizing.min_replicas} > max_replicas "
                f"{sizing.max_replicas}; allowed: min_replicas <= max_replicas"
            )
        if not sizing.min_replicas <= sizing.replicas <= sizing.max_replicas:
            problems.append(
                f"{where}.replicas: {sizing.replicas}; allowed: "
                f"{sizing.min_replicas}..{sizing.max_replicas} (between the autoscaling bounds)"
            )
        if spec.contract.kind == "consumer" and spec.contract.consumes:
            limit = _consumed_partitions(spec.contract)
            if sizing.max_replicas > limit:
                problems.append(
                    f"{where}.max_replicas: {sizing.max_replicas} exceeds the partitions of "
                    f"{', '.join(spec.contract.consumes)} ({limit}); allowed: 1..{limit}"
                )
        min_api = load_stack_file(env).tier.min_api_replicas
        if spec.contract.kind == "producer" and sizing.min_replicas < min_api:
            problems.append(
                f"{where}.min_replicas: {sizing.min_replicas}; allowed: >= {min_api} "
                f"(the API, platform:tier.minApiReplicas of stack {env})"
            )
    return problems


def _check_images(images: ImageCatalog) -> list[str]:
    problems = []
    for env in sorted(set(images.registries) | set(images.tags) | set(images.promoted)):
        if env not in ENVIRONMENTS:
            problems.append(
                f"images.json: env {env!r} is unknown; allowed: {', '.join(ENVIRONMENTS)}"
            )
    for env in ENVIRONMENTS:
        registry = images.registries.get(env)
        if not registry or registry.endswith("/") or ":" in registry.split("/", 1)[-1]:
            problems.append(
                f"images.json: registries.{env}: {registry!r}; allowed: host[/path] without a tag"
            )
        tags = images.tags.get(env, {})
        for app in sorted(set(tags) - set(APP_NAMES)):
            problems.append(
                f"images.json: tags.{env}.{app}: unknown app; allowed: {', '.join(APP_NAMES)}"
            )
        for app in APP_NAMES:
            tag = tags.get(app)
            if tag is None:
                problems.append(
                    f"images.json: tags.{env}.{app}: missing; allowed: {ALLOWED_TAG_SHAPES}"
                )
                continue
            reason = tag_problem(tag)
            if reason:
                problems.append(f"images.json: tags.{env}.{app}: {reason}")
    for env, apps in sorted(images.promoted.items()):
        for app in sorted(set(apps) - set(APP_NAMES)):
            problems.append(
                f"images.json: promoted.{env}.{app}: unknown app; allowed: {', '.join(APP_NAMES)}"
            )
    return problems


def check_catalog(catalog: Catalog) -> list[str]:
    """Every problem in the catalog, each naming the field and the allowed values."""
    problems: list[str] = []
    names = [spec.name for spec in catalog.apps]
    for name in names:
        if name not in APP_NAMES:
            problems.append(f"apps[{name}]: unknown app; allowed: {', '.join(APP_NAMES)}")
    for name in APP_NAMES:
        if name not in names:
            problems.append(f"apps: {name!r} has a contract but no catalog entry")
    if len(names) != len(set(names)):
        problems.append(f"apps: duplicate entries in {names}")
    for spec in catalog.apps:
        if spec.name not in APP_NAMES:
            continue
        prefix = f"apps[{spec.name}]"
        problems += _check_sizing(prefix, spec)
        problems += _check_resources(prefix, spec.resources)
        for env, level in sorted(spec.log_level.items()):
            if env not in ENVIRONMENTS:
                problems.append(
                    f"{prefix}.log_level.{env}: unknown env; allowed: {', '.join(ENVIRONMENTS)}"
                )
            if level not in LOG_LEVELS:
                problems.append(
                    f"{prefix}.log_level.{env}: {level!r}; allowed: {', '.join(LOG_LEVELS)}"
                )
        if spec.lag_threshold < 1:
            problems.append(f"{prefix}.lag_threshold: {spec.lag_threshold}; allowed: >= 1")
        if not 10 <= spec.target_cpu_percent <= 95:
            problems.append(
                f"{prefix}.target_cpu_percent: {spec.target_cpu_percent}; allowed: 10..95"
            )
        for env, routes in sorted(spec.routes.items()):
            if env not in ENVIRONMENTS:
                problems.append(
                    f"{prefix}.routes.{env}: unknown env; allowed: {', '.join(ENVIRONMENTS)}"
                )
            for channel in spec.channels(env):
                if channel not in NOTIFIER_CHANNEL_KEYS:
                    problems.append(
                        f"{prefix}.routes.{env}: channel {channel!r} is unknown; allowed: "
                        f"{', '.join(NOTIFIER_CHANNEL_KEYS)}"
                    )
            if not routes:
                problems.append(f"{prefix}.routes.{env}: empty; allowed: at least one route")
        if spec.routes and any(env not in spec.routes for env in ENVIRONMENTS):
            missing = [env for env in ENVIRONMENTS if env not in spec.routes]
            problems.append(f"{prefix}.routes: no routes for {missing}; every env needs one")
        if not spec.main_verb.isidentifier():
            problems.append(
                f"{prefix}.main_verb: {spec.main_verb!r}; allowed: a verb of the app's CLI"
            )
    problems += _check_images(catalog.images)
    return problems


def ensure_valid(catalog: Catalog) -> None:
    problems = check_catalog(catalog)
    if problems:
        body = "\n".join(f"  - {p}" for p in problems)
        raise CatalogError(f"invalid GitOps catalog ({len(problems)} problem(s)):\n{body}")
