"""What Argo CD would do with `gitops/<env>/`, in its order, as plain data (no containers here).

The root Application syncs the env folder without recursion: each top-level file is a child
Application pointing at its sub-folder. Argo CD syncs the children by their sync wave (lowest
first; the same wave in parallel), and inside each one runs the PreSync hooks, then applies the
rest by resource wave and kind (config before workloads, as gitops-engine's sync tasks order
them), then PostSync hooks. Only Kubernetes controllers turn objects into running pods, and none
runs here: the rehearsal plays each workload's pod template as the controller would create it,
and lists every other object as declared but not played.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.contracts import APP_NAMES

Manifest = dict[str, Any]

SYNC_WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
PHASES = ("PreSync", "Sync", "PostSync")
# Apply order inside one wave (gitops-engine sorts by kind like this, then by name); kinds not
# listed, custom resources among them, come last.
KIND_ORDER = (
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "StorageClass",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "Role",
    "RoleBinding",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
)
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")
SECRET_SOURCES = ("ExternalSecret",)


class PlanError(ValueError):
    """The env folder is not what the renderer writes (missing, or an object is malformed)."""


@dataclass(frozen=True)
class Workload:
    """One pod template to play: a Deployment's, a Job's, or one run of a CronJob's."""

    application: str
    kind: str
    name: str
    pod: Manifest
    """A complete `v1/Pod` built from the template (image references not yet rewritten)."""
    phase: str
    wave: int
    source: str
    """The manifest file, relative to the env folder."""
    backoff_limit: int = 0
    active_deadline_s: int | None = None

    @property
    def containers(self) -> list[Manifest]:
        return list(self.pod["spec"]["containers"])

    @property
    def runs_to_completion(self) -> bool:
        return self.kind in ("Job", "CronJob")


@dataclass
class ApplicationPlan:
    name: str
    wave: int
    folder: str
    config_maps: list[Manifest] = field(default_factory=list)
    external_secrets: list[Manifest] = field(default_factory=list)
    workloads: list[Workload] = field(default_factory=list)
    not_played: list[str] = field(default_factory=list)
    """`Kind/name` of objects that need a controller or API server this machine lacks."""


@dataclass
class EnvPlan:
    env: str
    applications: list[ApplicationPlan]

    def waves(self) -> Iterator[tuple[int, list[ApplicationPlan]]]:
        for wave in sorted({a.wave for a in self.applications}):
            yield wave, [a for a in self.applications if a.wave == wave]

    @property
    def config_maps(self) -> list[Manifest]:
        return [cm for app in self.applications for cm in app.config_maps]

    @property
    def external_secrets(self) -> list[Manifest]:
        return [es for app in self.applications for es in app.external_secrets]

    @property
    def workloads(self) -> list[Workload]:
        return [w for app in self.applications for w in app.workloads]


def _wave(manifest: Manifest) -> int:
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    return int(annotations.get(SYNC_WAVE, "0"))


def _phase(manifest: Manifest) -> str:
    annotations = manifest.get("metadata", {}).get("annotations") or {}
    phase = annotations.get(HOOK, "Sync")
    if phase not in PHASES:
        raise PlanError(f"{manifest['metadata']['name']}: hook {phase!r}; allowed: {PHASES}")
    return str(phase)


def _order(item: tuple[str, Manifest]) -> tuple[int, int, int, str]:
    _, manifest = item
    kind = manifest["kind"]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    return (PHASES.index(_phase(manifest)), _wave(manifest), rank, manifest["metadata"]["name"])


def pod_from_template(name: str, template: Manifest) -> Manifest:
    """The Pod a controller would create from `template` (named, in the template's labels)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(template.get("metadata", {}).get("labels", {}))},
        "spec": copy.deepcopy(template["spec"]),
    }


def _workload(app: str, source: str, manifest: Manifest) -> Workload:
    kind, name, spec = manifest["kind"], manifest["metadata"]["name"], manifest["spec"]
    job_spec = spec["jobTemplate"]["spec"] if kind == "CronJob" else spec
    template = job_spec["template"] if kind != "Deployment" else spec["template"]
    return Workload(
        application=app,
        kind=kind,
        name=name,
        pod=pod_from_template(name, template),
        phase=_phase(manifest),
        wave=_wave(manifest),
        source=source,
        backoff_limit=int(job_spec.get("backoffLimit", 6)) if kind != "Deployment" else 0,
        active_deadline_s=job_spec.get("activeDeadlineSeconds") if kind != "Deployment" else None,
    )


def _load(path: Path) -> Manifest:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PlanError(f"{path}: cannot read ({exc})") from None
    if not isinstance(loaded, dict) or "kind" not in loaded:
        raise PlanError(f"{path}: not a Kubernetes object")
    return loaded


def load_env(gitops_root: Path, env: str) -> EnvPlan:
    """Read `gitops/<env>/` as the root Application would, into Argo CD's order."""
    base = gitops_root / env
    if not base.is_dir():
        raise PlanError(f"{base}: no such folder; run `platform gitops render`")
    applications = []
    for app_file in sorted(base.glob("*.yaml")):
        application = _load(app_file)
        if application["kind"] != "Application":
            raise PlanError(f"{app_file.name}: the env folder's top level holds Applications only")
        folder = Path(application["spec"]["source"]["path"]).name
        plan = ApplicationPlan(application["metadata"]["name"], _wave(application), folder)
        objects = [
            (f"{folder}/{path.name}", _load(path))
            for path in sorted((base / folder).glob("*.yaml"))
        ]
        for source, manifest in sorted(objects, key=_order):
            kind = manifest["kind"]
            if kind == "ConfigMap":
                plan.config_maps.append(manifest)
            elif kind in SECRET_SOURCES:
                plan.external_secrets.append(manifest)
            elif kind in WORKLOAD_KINDS:
                plan.workloads.append(_workload(plan.name, source, manifest))
            else:
                plan.not_played.append(f"{kind}/{manifest['metadata']['name']}")
        applications.append(plan)
    if not applications:
        raise PlanError(f"{base}: no Applications; run `platform gitops render`")
    return EnvPlan(env, applications)


def image_app(image: str) -> str:
    """The bundled app an image reference names (`<registry>/<app>:<tag>` in images.json)."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    app = repository.rsplit("/", 1)[-1]
    if app not in APP_NAMES:
        raise PlanError(f"image {image!r} names no bundled app; allowed: {', '.join(APP_NAMES)}")
    return app


def rewrite_images(pod: Manifest, local: dict[str, str]) -> tuple[Manifest, list[tuple[str, str]]]:
    """The pod with each container image replaced by the locally built one; the only rewrite."""
    rewritten = copy.deepcopy(pod)
    changes = []
    for container in rewritten["spec"].get("initContainers", []) + rewritten["spec"]["containers"]:
        original = container["image"]
        container["image"] = local[image_app(original)]
        # A locally built image is never in a registry: pulling it would fail.
        container["imagePullPolicy"] = "Never"
        changes.append((original, container["image"]))
    return rewritten, changes
