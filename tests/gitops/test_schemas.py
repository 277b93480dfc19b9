"""Every rendered object validates: built-in kinds against the Kubernetes OpenAPI schema of the
stack's cluster version, custom resources against two published CRD schemas each (./schemas):
one from the `older` bracket (npm @kubernetes-models: Argo CD v2.10.8, KEDA v2.10.1,
prometheus-operator v0.57.0) and one from the `newer` bracket (chart CRD files: Argo CD v3.2.1,
KEDA 2.16.1, prometheus-operator v0.87.1). The exact pinned releases are not available offline; a
field both brackets accept is very likely in the pinned release too (schemas/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from infra.config import load_stack_file
from infra.contracts import ENVIRONMENTS

SCHEMAS = Path(__file__).parent / "schemas"
BRACKETS = ("older", "newer")
SOURCES: dict[str, dict[str, dict[str, Any]]] = {
    bracket: entry["schemas"]
    for bracket, entry in json.loads((SCHEMAS / "sources.json").read_text())["brackets"].items()
}
CRD_SCHEMAS = {
    ("argoproj.io/v1alpha1", "Application"): "argoproj.io_v1alpha1_application.json",
    ("argoproj.io/v1alpha1", "AppProject"): "argoproj.io_v1alpha1_appproject.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_prometheusrule.json",
}
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io"}


def _strict(schema: Any) -> Any:
    """Refuse unknown fields wherever the CRD lists its properties (the API server would prune
    them silently, hiding a typo)."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _load(bracket: str, name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_strict(json.loads((SCHEMAS / bracket / name).read_text())))


def label(bracket: str, name: str) -> str:
    """Which schema this is, for failure messages: bracket, upstream version, place vs. the pin."""
    entry = SOURCES[bracket][name]
    version = entry["source"]["app_version"] or "unknown version"
    return (
        f"{bracket} bracket ({entry['kind']} CRD of {version}, {entry['vs_pin']} than the pinned "
        f"{entry['chart']} {entry['pinned_chart_version']} = {entry['pinned_app_version']})"
    )


VALIDATORS = {
    bracket: {key: _load(bracket, name) for key, name in CRD_SCHEMAS.items()}
    for bracket in BRACKETS
}


def schema_errors(obj: dict[str, Any], brackets: tuple[str, ...] = BRACKETS) -> list[str]:
    """Every error of every bracket's schema for `obj`, each naming the bracket that raised it."""
    key = (obj["apiVersion"], obj["kind"])
    out = []
    for bracket in brackets:
        errors = sorted(VALIDATORS[bracket][key].iter_errors(obj), key=lambda e: list(e.path))
        out += [
            f"rejected by the {label(bracket, CRD_SCHEMAS[key])}: {list(e.path)}: {e.message}"
            for e in errors
        ]
    return out


def _objects(rendered: dict[str, str], env: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p, yaml.safe_load(t)) for p, t in rendered.items() if p.startswith(f"{env}/")]


def test_cluster_versions_are_bundled_by_kubernetes_validate() -> None:
    # kubernetes-validate silently falls back to the nearest older bundled version; every stack's
    # version must be bundled exactly so the check runs against the version we deploy.
    bundled = {".".join(v.split(".")[:2]) for v in kubernetes_validate.utils.all_versions()}
    for env in ENVIRONMENTS:
        assert load_stack_file(env).cluster.version in bundled


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_builtin_kinds_match_the_cluster_openapi_schema(rendered: dict[str, str], env: str) -> None:
    version = load_stack_file(env).cluster.version
    checked = 0
    for path, obj in _objects(rendered, env):
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_custom_resources_match_both_crd_schema_brackets(
    rendered: dict[str, str], env: str
) -> None:
    kinds = set()
    failures = []
    for path, obj in _objects(rendered, env):
        key = (obj["apiVersion"], obj["kind"])
        group = obj["apiVersion"].rpartition("/")[0]
        if key not in CRD_SCHEMAS:
            assert group in BUILTIN_GROUPS, f"{path}: custom resource {key} has no pinned schema"
            continue
        failures += [f"{path} ({obj['kind']}) {error}" for error in schema_errors(obj)]
        kinds.add(obj["kind"])
    assert not failures, "\n".join(failures)
    assert {"Application", "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds


@pytest.mark.parametrize("bracket", BRACKETS)
def test_strict_crd_schema_rejects_an_unknown_field(rendered: dict[str, str], bracket: str) -> None:
    app = yaml.safe_load(rendered["prod/events-api.yaml"])
    assert not schema_errors(app, (bracket,))
    app["spec"]["syncPolicy"]["automated"]["selfHeel"] = True
    (error,) = schema_errors(app, (bracket,))
    assert (
        f"rejected by the {bracket} bracket (Application CRD of " in error and "selfHeel" in error
    )


def test_a_field_only_the_newer_bracket_knows_is_refused(rendered: dict[str, str]) -> None:
    # ScaledObject.spec.initialCooldownPeriod appeared after KEDA 2.10.1: using it must fail even
    # though the newer schema accepts it, and the message must say which bracket refused it.
    scaled = next(obj for _, obj in _objects(rendered, "prod") if obj["kind"] == "ScaledObject")
    scaled["spec"]["initialCooldownPeriod"] = 60
    assert not schema_errors(scaled, ("newer",))
    (error,) = schema_errors(scaled)
    assert error.startswith(
        "rejected by the older bracket (ScaledObject CRD of v2.10.1, older than the pinned keda"
    )
    assert "initialCooldownPeriod" in error


def test_a_field_only_the_older_bracket_knows_is_refused(rendered: dict[str, str]) -> None:
    # The older Application schema still lists the controller-written `operation`; the newer one
    # has it dropped. Setting it must fail, named as the newer bracket's refusal.
    app = yaml.safe_load(rendered["prod/events-api.yaml"])
    app["operation"] = {"sync": {"revision": "HEAD"}}
    assert not schema_errors(app, ("older",))
    (error,) = schema_errors(app)
    assert error.startswith("rejected by the newer bracket (Application CRD of v3.2.1, newer than")
    assert "'operation' was unexpected" in error


def test_openapi_schema_rejects_a_wrong_type(rendered: dict[str, str]) -> None:
    deployment = yaml.safe_load(rendered["prod/events-api/deployment-events-api.yaml"])
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.32", strict=True)
