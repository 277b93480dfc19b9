"""Helm releases and images are pinned, so a re-deploy installs exactly what was reviewed."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import rule
from infra.policies.model import RuleContext, Severity
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


def _image_values(values: Any) -> Iterator[tuple[str, Any]]:
    """(path, node) for every `image` entry in Helm values."""
    for path, node in walk(values):
        if path and path[-1] == "image":
            yield dotted(path), node


def unpinned_images(values: Any) -> Iterator[tuple[str, str]]:
    """(path, problem) for images that float: a string without tag or `latest`, or tag `latest`."""
    for where, node in _image_values(values):
        if isinstance(node, str):
            problem = image_problem(node)
            if problem:
                yield where, f"{node!r} {problem}"
        elif isinstance(node, Mapping) and str(get(node, "tag") or "") == "latest":
            yield where, "tag is 'latest'"


def implicit_tags(values: Any) -> Iterator[tuple[str, str]]:
    """(path, problem) for `image: {repository}` objects with neither tag nor digest.

    The chart then runs its own appVersion: pinned, but only through the chart version, so a
    chart bump silently changes the image. Advisory: stating the tag makes the image reviewable.
    """
    for where, node in _image_values(values):
        if not isinstance(node, Mapping) or "repository" not in node:
            continue
        if not get(node, "tag") and not get(node, "digest"):
            yield where, f"repository {get(node, 'repository')!r} has no tag (chart appVersion)"


@rule(
    "helm-release-pinned",
    "Helm releases name an exact chart version and no image in their values floats.",
    types=HELM_TYPES,
)
def helm_release_pinned(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    chart = inputs.get("chart") or "?"
    version = inputs.get("version")
    if not isinstance(version, str) or not EXACT_VERSION.match(version):
        yield f"chart {chart} version is {version or 'not set'}; allowed: an exact version (1.2.3)"
    for where, problem in unpinned_images(inputs.get("values")):
        yield f"values.{where}: {problem}"


@rule(
    "helm-image-tag-explicit",
    "Image objects in Helm values state their tag (or digest) instead of the chart's appVersion.",
    severity=Severity.ADVISORY,
    types=HELM_TYPES,
)
def helm_image_tag_explicit(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    for where, problem in implicit_tags(inputs.get("values")):
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
