"""Cross-checks over a rendered tree: relations between objects that no schema can see.

Each check reads the YAML as written (not the builders' inputs), so it catches a builder bug as well
as a hand edit. `cross_check()` returns problems as "<env>/<file>: <what is wrong>".
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from infra.config import PlatformConfig, load_stack_file
from infra.contracts import (
    APP_NAMES,
    ARGOCD_PROJECT,
    DB_ROLES_SERVICE_ACCOUNT,
    FACTS_CONFIGMAP,
    FACTS_DB_SECRET,
    KAFKA_PLAINTEXT_PORT,
    MSK_IAM_PORT,
    NOTIFIER_CHANNELS_SECRET,
    OTLP_HTTP_PORT,
    POSTGRES_PORT,
    TOPICS_JOB_SERVICE_ACCOUNT,
    Fact,
    app_contract,
)
from infra.gitops.catalog import ImageCatalog
from infra.gitops.manifests.common import HTTPS_PORT

Manifest = dict[str, Any]
TOPIC_SETTINGS = ("EVENTS_TOPIC", "TASKS_TOPIC", "DEAD_LETTER_TOPIC")
# libyaml's loader when PyYAML was built with it: the pure-Python one takes seconds per tree.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Obj:
    path: str
    body: Manifest

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


def parse_tree(files: dict[str, str]) -> dict[str, list[Obj]]:
    """Objects per env from `{"<env>/...": yaml}`."""
    tree: dict[str, list[Obj]] = defaultdict(list)
    for path, text in sorted(files.items()):
        tree[path.split("/", 1)[0]].append(Obj(path, yaml.load(text, Loader=_Loader)))  # noqa: S506 - a safe loader
    return dict(tree)


def _of(objs: Iterable[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o.kind == kind]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _pod_templates(objs: list[Obj]) -> list[tuple[Obj, Manifest]]:
    """(owner, pod template) for Deployments and Jobs."""
    return [(o, o.body["spec"]["template"]) for o in objs if o.kind in ("Deployment", "Job")]


def check_layout(env: str, objs: list[Obj]) -> list[str]:
    """The root app syncs the top level without recursion: only Applications there, each pointing
    at a sub-folder that exists, and every sub-folder owned by one Application."""
    problems = []
    top = [o for o in objs if o.path.count("/") == 1]
    folders = {o.path.split("/")[1] for o in objs if o.path.count("/") == 2}
    targets = set()
    for o in top:
        if o.kind != "Application":
            problems.append(
                f"{o.path}: only ArgoCD Applications may sit at the top of gitops/{env}"
            )
            continue
        folder = o.body["spec"]["source"]["path"].rsplit("/", 1)[-1]
        targets.add(folder)
        if folder not in folders:
            problems.append(f"{o.path}: points at {folder}/ which holds no manifests")
    for folder in sorted(folders - targets):
        problems.append(f"{env}/{folder}/: no Application syncs this folder")
    return problems


def check_services(objs: list[Obj]) -> list[str]:
    problems = []
    templates = _pod_templates(objs)
    for svc in _of(objs, "Service"):
        selector = svc.body["spec"].get("selector") or {}
        owners = [o for o, t in templates if _matches(selector, t["metadata"]["labels"])]
        deployments = [o for o in owners if o.kind == "Deployment"]
        if not selector or [o.name for o in deployments] != [svc.name]:
            problems.append(
                f"{svc.path}: selector {selector} must select exactly the pods of Deployment "
                f"{svc.name!r}; it selects {[f'{o.kind}/{o.name}' for o in owners]}"
            )
        elif len(owners) != len(deployments):
            problems.append(
                f"{svc.path}: selector also matches Job pods {[o.name for o in owners]}"
            )
        container_ports = {
            p["name"]
            for o in deployments
            for c in o.body["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        for port in svc.body["spec"]["ports"]:
            if port["targetPort"] not in container_ports:
                problems.append(
                    f"{svc.path}: targetPort {port['targetPort']!r} is not a container port "
                    f"of {svc.name}; allowed: {sorted(container_ports)}"
                )
    return problems


def check_service_monitors(objs: list[Obj]) -> list[str]:
    problems = []
    services = _of(objs, "Service")
    for sm in _of(objs, "ServiceMonitor"):
        selector = sm.body["spec"]["selector"].get("matchLabels", {})
        chosen = [s for s in services if _matches(selector, s.body["metadata"]["labels"])]
        if not chosen:
            problems.append(f"{sm.path}: selector {selector} matches no Service")
        ports = {p.get("name") for s in chosen for p in s.body["spec"]["ports"]}
        for endpoint in sm.body["spec"]["endpoints"]:
            if endpoint.get("port") not in ports:
                problems.append(
                    f"{sm.path}: endpoint port {endpoint.get('port')!r} is not a port of the "
                    f"selected Service(s); allowed: {sorted(p for p in ports if p)}"
                )
    return problems


def _required_egress(template: Manifest, kafka_port: int, own_db_logins: bool) -> set[int]:
    """Ports the pod's configuration points it at, from what it mounts: the facts ConfigMap
    (Kafka for the apps and the topics Job; OTLP and S3 over HTTPS when the app's contract reads
    those facts), a database login (PostgreSQL; on RDS each app's own login comes from Secrets
    Manager over HTTPS), and the notifier's channel credentials (HTTPS)."""
    app = template["metadata"]["labels"].get("app.kubernetes.io/name")
    contract = app_contract(app) if app in APP_NAMES else None
    facts = set(contract.facts) if contract else set()
    if app == DB_ROLES_SERVICE_ACCOUNT:
        return {POSTGRES_PORT, HTTPS_PORT}  # the database, and Secrets Manager
    ports: set[int] = set()
    for container in template["spec"]["containers"]:
        sources = container.get("envFrom", [])
        maps = {s["configMapRef"]["name"] for s in sources if "configMapRef" in s}
        secrets = {s["secretRef"]["name"] for s in sources if "secretRef" in s}
        if FACTS_CONFIGMAP in maps and (contract or app == TOPICS_JOB_SERVICE_ACCOUNT):
            ports.add(kafka_port)
            if Fact.OTEL_EXPORTER_OTLP_ENDPOINT in facts:
                ports.add(OTLP_HTTP_PORT)
            if Fact.AUDIT_ARCHIVE_BUCKET in facts:
                ports.add(HTTPS_PORT)
        if FACTS_DB_SECRET in secrets:
            ports.add(POSTGRES_PORT)
        if contract and contract.uses_database and own_db_logins:
            ports |= {POSTGRES_PORT, HTTPS_PORT}
        if NOTIFIER_CHANNELS_SECRET in secrets:
            ports.add(HTTPS_PORT)  # the channels' HTTPS APIs
    return ports


def _egress_ports(policies: list[Obj], labels: dict[str, str]) -> tuple[set[int], bool]:
    """TCP ports the policies selecting these pod labels allow out, and whether DNS is allowed."""
    ports: set[int] = set()
    dns = False
    for policy in policies:
        if not _matches(policy.body["spec"]["podSelector"].get("matchLabels", {}), labels):
            continue
        for rule in policy.body["spec"].get("egress", []):
            for port in rule.get("ports", []):
                if port["port"] == 53 and port.get("protocol") == "UDP":
                    dns = True
                if port.get("protocol", "TCP") == "TCP":
                    ports.add(int(port["port"]))
    return ports, dns


@cache
def _stack(env: str) -> PlatformConfig:
    return load_stack_file(env)


def check_network_policies(env: str, objs: list[Obj]) -> list[str]:
    cfg = _stack(env)
    kafka_port = MSK_IAM_PORT if cfg.kafka.mode == "msk" else KAFKA_PLAINTEXT_PORT
    policies = _of(objs, "NetworkPolicy")
    problems = []
    if not any(
        p.body["spec"]["podSelector"] == {}
        and not p.body["spec"].get("egress")
        and not p.body["spec"].get("ingress")
        for p in policies
    ):
        problems.append(f"{env}: no default-deny NetworkPolicy")
    for owner, template in _pod_templates(objs):
        labels = template["metadata"]["labels"]
        allowed, dns = _egress_ports(policies, labels)
        needed = _required_egress(template, kafka_port, cfg.database.mode == "rds")
        missing = sorted(needed - allowed)
        if missing:
            problems.append(
                f"{owner.path}: egress to ports {missing} is used by its config but no "
                f"NetworkPolicy allows it (allowed: {sorted(allowed)})"
            )
        if not dns:
            problems.append(f"{owner.path}: no NetworkPolicy allows DNS (UDP 53)")
    return problems


def check_egress_destinations(objs: list[Obj]) -> list[str]:
    """Every egress rule names where it may go (`to`), not only a port: a port-only rule lets a
    pod reach any host on that port (the internet included)."""
    problems = []
    for policy in _of(objs, "NetworkPolicy"):
        for index, rule in enumerate(policy.body["spec"].get("egress", [])):
            if not rule.get("to"):
                ports = [p.get("port") for p in rule.get("ports", [])] or "every port"
                problems.append(
                    f"{policy.path}: egress rule {index} allows {ports} to any destination; "
                    "allowed: a rule with `to` (ipBlock, namespaceSelector or podSelector)"
                )
    return problems


def check_application_projects(objs: list[Obj]) -> list[str]:
    """Every child Application belongs to `platform-apps`, whose sources and destinations are
    locked; another project (`default` above all) would escape that scoping."""
    problems = []
    for app in _of(objs, "Application"):
        project = app.body.get("spec", {}).get("project")
        if project != ARGOCD_PROJECT:
            problems.append(
                f"{app.path}: project {project!r}; allowed: {ARGOCD_PROJECT!r} (the locked "
                "AppProject of every child Application)"
            )
    return problems


def _topics_spec(objs: list[Obj]) -> dict[str, int]:
    for job in _of(objs, "Job"):
        for container in job.body["spec"]["template"]["spec"]["containers"]:
            for var in container.get("env", []):
                if var["name"] == "TOPICS_SPEC":
                    spec = json.loads(var["value"])
                    return {t["name"]: int(t["partitions"]) for t in spec["topics"]}
    return {}


def check_topics(env: str, objs: list[Obj]) -> list[str]:
    created = _topics_spec(objs)
    problems = [] if created else [f"{env}: no topics Job (TOPICS_SPEC) found"]
    for cm in _of(objs, "ConfigMap"):
        for key in TOPIC_SETTINGS:
            topic = cm.body.get("data", {}).get(key)
            if topic is not None and topic not in created:
                problems.append(
                    f"{cm.path}: {key}={topic!r} is not created by the topics job "
                    f"(creates: {sorted(created)})"
                )
    for so in _of(objs, "ScaledObject"):
        for trigger in so.body["spec"]["triggers"]:
            topic = trigger["metadata"].get("topic")
            if topic not in created:
                problems.append(f"{so.path}: trigger topic {topic!r} is not created by the job")
            elif so.body["spec"]["maxReplicaCount"] > created[topic]:
                problems.append(
                    f"{so.path}: maxReplicaCount {so.body['spec']['maxReplicaCount']} exceeds "
                    f"the {created[topic]} partitions of {topic!r}"
                )
    return problems


def check_no_copied_facts(objs: list[Obj]) -> list[str]:
    """Facts reach pods only through envFrom; an inline env var with a fact's name is a copy."""
    facts = {f.value for f in Fact}
    problems = []
    for owner, template in _pod_templates(objs):
        for container in template["spec"]["containers"]:
            for var in container.get("env", []):
                if var["name"] in facts:
                    problems.append(f"{owner.path}: fact {var['name']} copied into the manifest")
    return problems


def _image_tags(objs: list[Obj]) -> dict[str, str]:
    return {
        d.name: d.body["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
        for d in _of(objs, "Deployment")
    }


def check_promotions(tree: dict[str, list[Obj]], images: ImageCatalog) -> list[str]:
    """prod runs the same tag as dev only when `set-image` promoted that tag to prod."""
    if "prod" not in tree or "dev" not in tree:
        return []
    dev, prod = _image_tags(tree["dev"]), _image_tags(tree["prod"])
    problems = []
    for app, tag in sorted(prod.items()):
        if dev.get(app) == tag and images.promoted.get("prod", {}).get(app) != tag:
            problems.append(
                f"prod/{app}: image tag {tag!r} equals dev's but was not promoted by "
                "`platform gitops set-image --env prod`"
            )
    return problems


def cross_check(files: dict[str, str], images: ImageCatalog) -> list[str]:
    tree = parse_tree(files)
    problems: list[str] = []
    for env, objs in sorted(tree.items()):
        problems += check_layout(env, objs)
        problems += check_services(objs)
        problems += check_service_monitors(objs)
        problems += check_network_policies(env, objs)
        problems += check_egress_destinations(objs)
        problems += check_application_projects(objs)
        problems += check_topics(env, objs)
        problems += check_no_copied_facts(objs)
    problems += check_promotions(tree, images)
    return problems
