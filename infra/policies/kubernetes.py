"""Helm releases and images are pinned, so a re-deploy installs exactly what was reviewed."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import rule
from infra.policies.model import RuleContext
from infra.policies.values import as_list, dotted, get, walk

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHART_V4 = "kubernetes:helm.sh/v4:Chart"
HELM_TYPES = (HELM_RELEASE, HELM_CHART_V4)
WORKLOAD_TYPES = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:batch/v1:CronJob",
    "kubernetes:core/v1:Pod",
)

# An exact SemVer 2 version (optionally "v"-prefixed, as some charts publish); ranges such as
# "^1.2", "~1.2.0", "1.x", ">=1" or a bare "1.2" let Helm pick a different chart later.
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None if it is (a digest or a non-latest tag)."""
    if DIGEST.search(image):
        return None
    last = image.rsplit("/", 1)[-1]  # a registry host may carry a port ("host:5000/app")
    if ":" not in last:
        return "has no tag (resolves to latest)"
    tag = last.rsplit(":", 1)[1]
    if not tag or tag == "latest":
        return "uses the tag 'latest'"
    return None


def _images_in_values(values: Any) -> Iterator[tuple[str, str]]:
    """(path, problem) for every image in Helm values, in either common shape.

    Charts take `image: "repo:tag"` or `image: {repository, tag, digest}`; an image object that
    names a repository must also name a tag or digest (the chart's appVersion default would make
    the running image depend on the chart, not on this review).
    """
    for path, node in walk(values):
        if not path or path[-1] != "image":
            continue
        where = dotted(path)
        if isinstance(node, str):
            problem = image_problem(node)
            if problem:
                yield where, f"{node!r} {problem}"
        elif isinstance(node, Mapping) and "repository" in node:
            tag = str(get(node, "tag") or "")
            if get(node, "digest"):
                continue
            if not tag:
                yield where, f"repository {get(node, 'repository')!r} has no tag"
            elif tag == "latest":
                yield where, "tag is 'latest'"


@rule(
    "helm-release-pinned",
    "Helm releases name an exact chart version and pin every image in their values.",
    types=HELM_TYPES,
)
def helm_release_pinned(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    chart = inputs.get("chart") or "?"
    version = inputs.get("version")
    if not isinstance(version, str) or not EXACT_VERSION.match(version):
        yield f"chart {chart} version is {version or 'not set'}; allowed: an exact version (1.2.3)"
    for where, problem in _images_in_values(inputs.get("values")):
        yield f"values.{where}: {problem}"


def _containers(inputs: Mapping[str, Any], resource_type: str) -> list[Any]:
    spec = get(inputs, "spec")
    if resource_type.endswith(":CronJob"):
        pod = get(spec, "jobTemplate", "spec", "template", "spec")
    elif resource_type.endswith(":Pod"):
        pod = spec
    else:
        pod = get(spec, "template", "spec")
    return [*as_list(get(pod, "initContainers")), *as_list(get(pod, "containers"))]


@rule(
    "images-pinned",
    "Kubernetes workloads declared by Pulumi run pinned images (a non-latest tag or a digest).",
    types=WORKLOAD_TYPES,
)
def images_pinned(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    for container in _containers(inputs, resource_type):
        image = get(container, "image")
        name = get(container, "name") or "?"
        if not isinstance(image, str):
            yield f"container {name} has no image"
            continue
        problem = image_problem(image)
        if problem:
            yield f"container {name} image {image!r} {problem}"
