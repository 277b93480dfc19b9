"""Render the catalog into `gitops/<env>/` for every stack: deterministic, complete, pruned.

Layout per env (the root Application syncs the top level without recursion):

    gitops/<env>/<name>.yaml          one ArgoCD Application per sub-folder (nothing else)
    gitops/<env>/platform-config/     wave 0: ServiceAccounts, settings ConfigMaps, NetworkPolicies
    gitops/<env>/kafka-topics/        wave 1: the topics spec + its PreSync Job
    gitops/<env>/<app>/               wave 2: PreSync migration, workload, autoscaling, monitoring

Output is byte-identical for identical input: keys sorted, objects in a fixed order, one object
per file named after its kind and name, no timestamps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from infra.config import REPO_ROOT, PlatformConfig, load_stack_file
from infra.contracts import APPS, ENVIRONMENTS, GITOPS_DIR
from infra.gitops.catalog import Catalog, ensure_valid
from infra.gitops.manifests import argocd, jobs, monitoring, network, scaling, secrets, workload
from infra.gitops.manifests.common import (
    DB_ROLES_JOB_NAME,
    TOPICS_JOB_NAME,
    EnvContext,
    Manifest,
)

GITOPS_ROOT = REPO_ROOT / GITOPS_DIR
PLATFORM_CONFIG = "platform-config"
HEADER = "# Rendered by `platform gitops render` from infra/gitops/ - do not edit by hand.\n"

# Application sync waves: config and secrets -> topics and migrations -> workloads.
APP_WAVE_CONFIG = 0
APP_WAVE_TOPICS = 1
APP_WAVE_APPS = 2
# Resource waves inside an app's folder (migrations run before them as PreSync hooks).
WAVE_WORKLOAD = 0
WAVE_SCALING = 1
WAVE_MONITORING = 2


class _Dumper(yaml.SafeDumper):
    """Block style everywhere; multi-line strings (JSON documents) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(manifest: Manifest) -> str:
    body = yaml.dump(manifest, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100)
    return HEADER + body


def file_name(manifest: Manifest) -> str:
    kind = re.sub(r"(?<!^)(?=[A-Z])", "-", manifest["kind"]).lower()
    return f"{kind}-{manifest['metadata']['name']}.yaml"


def platform_config(ctx: EnvContext, catalog: Catalog) -> list[Manifest]:
    objects = [network.default_deny(WAVE_WORKLOAD)]
    for spec in catalog.apps:
        contract = spec.contract
        objects += [
            workload.service_account(contract.service_account, contract.name, WAVE_WORKLOAD),
            workload.settings_config_map(spec, ctx, WAVE_WORKLOAD),
            network.app_policy(spec, ctx, WAVE_WORKLOAD),
        ]
        if spec.routes:
            objects.append(secrets.notifier_channels(spec, ctx, WAVE_WORKLOAD))
    objects += [
        workload.service_account(TOPICS_JOB_NAME, TOPICS_JOB_NAME, WAVE_WORKLOAD),
        network.topics_job_policy(TOPICS_JOB_NAME, ctx, WAVE_WORKLOAD),
    ]
    if ctx.own_db_logins:
        objects += [
            workload.service_account(DB_ROLES_JOB_NAME, DB_ROLES_JOB_NAME, WAVE_WORKLOAD),
            network.db_roles_job_policy(DB_ROLES_JOB_NAME, ctx, WAVE_WORKLOAD),
        ]
    return objects


def kafka_topics(ctx: EnvContext, catalog: Catalog) -> list[Manifest]:
    return [jobs.topics_config_map(ctx, WAVE_WORKLOAD), jobs.topics_job(ctx, catalog.images)]


def app_objects(name: str, ctx: EnvContext, catalog: Catalog) -> list[Manifest]:
    spec = catalog.app(name)
    contract = spec.contract
    objects = [
        workload.deployment(spec, ctx, catalog.images, WAVE_WORKLOAD),
        workload.service(contract, WAVE_WORKLOAD),
        workload.disruption_budget(contract, WAVE_WORKLOAD),
    ]
    if contract.uses_database:
        objects.append(jobs.migration_job(spec, ctx, catalog.images))
    if contract.uses_archive_bucket:
        objects.append(jobs.archive_cron_job(spec, ctx, catalog.images, WAVE_WORKLOAD))
    if contract.kind == "consumer":
        if ctx.msk:
            objects.append(scaling.trigger_authentication(spec, WAVE_WORKLOAD))
        objects.append(scaling.lag_autoscaler(spec, ctx, WAVE_SCALING))
    else:
        objects.append(scaling.cpu_autoscaler(spec, ctx, WAVE_SCALING))
    if spec.public_paths:
        objects.append(network.ingress(spec, ctx, WAVE_SCALING))
    objects += [
        monitoring.service_monitor(spec, WAVE_MONITORING),
        monitoring.prometheus_rule(spec, ctx, WAVE_MONITORING),
        monitoring.dashboard_config_map(spec, ctx, WAVE_MONITORING),
    ]
    return objects


def render_env(cfg: PlatformConfig, catalog: Catalog) -> dict[str, str]:
    """Files of one env, keyed by path relative to the gitops root (`<env>/...`)."""
    ctx = EnvContext(cfg)
    env = ctx.env
    folders: list[tuple[str, int, bool, list[Manifest]]] = [
        (PLATFORM_CONFIG, APP_WAVE_CONFIG, False, platform_config(ctx, catalog)),
        (TOPICS_JOB_NAME, APP_WAVE_TOPICS, False, kafka_topics(ctx, catalog)),
    ]
    if ctx.own_db_logins:
        # Same wave as the topics: both before the apps, whose migrations log in as their role.
        db_roles = [
            jobs.db_roles_job(ctx, catalog.images),
            jobs.db_roles_rotation_cron_job(ctx, catalog.images, WAVE_WORKLOAD),
        ]
        folders.append((DB_ROLES_JOB_NAME, APP_WAVE_TOPICS, False, db_roles))
    folders += [
        (app.name, APP_WAVE_APPS, True, app_objects(app.name, ctx, catalog)) for app in APPS
    ]
    files: dict[str, str] = {}
    for folder, wave, autoscaled, objects in folders:
        app = argocd.application(folder, ctx, wave, autoscaled=autoscaled)
        files[f"{env}/{folder}.yaml"] = to_yaml(app)
        for manifest in objects:
            path = f"{env}/{folder}/{file_name(manifest)}"
            if path in files:
                raise ValueError(f"two objects render to {path}")
            files[path] = to_yaml(manifest)
    return dict(sorted(files.items()))


def render(catalog: Catalog, envs: Iterable[str] = ENVIRONMENTS) -> dict[str, str]:
    """Validate the catalog, then render every requested env (nothing is written here)."""
    ensure_valid(catalog)
    files: dict[str, str] = {}
    for env in envs:
        files.update(render_env(load_stack_file(env), catalog))
    return files


@dataclass
class TreeDiff:
    """How a tree on disk differs from what the catalog renders."""

    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.stale or self.missing or self.extra)

    def lines(self) -> list[str]:
        return (
            [f"stale:   {p}" for p in self.stale]
            + [f"missing: {p}" for p in self.missing]
            + [f"extra:   {p}" for p in self.extra]
        )


def _on_disk(root: Path, envs: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for env in envs:
        base = root / env
        if base.is_dir():
            found |= {p.relative_to(root).as_posix() for p in base.rglob("*") if p.is_file()}
    return found


def diff_tree(root: Path, files: dict[str, str], envs: Iterable[str]) -> TreeDiff:
    envs = list(envs)
    present = _on_disk(root, envs)
    diff = TreeDiff()
    for path, text in files.items():
        if path not in present:
            diff.missing.append(path)
        elif (root / path).read_text() != text:
            diff.stale.append(path)
    diff.extra = sorted(present - set(files))
    return diff


def write_tree(root: Path, files: dict[str, str], envs: Iterable[str]) -> TreeDiff:
    """Make the tree equal to `files` for `envs`: write what changed, delete what is no longer
    produced, drop empty folders. Returns what was changed."""
    envs = list(envs)
    diff = diff_tree(root, files, envs)
    for path in diff.missing + diff.stale:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path])
    for path in diff.extra:
        (root / path).unlink()
    for env in envs:
        base = root / env
        if base.is_dir():
            for folder in sorted((p for p in base.rglob("*") if p.is_dir()), reverse=True):
                if not any(folder.iterdir()):
                    folder.rmdir()
    return diff
