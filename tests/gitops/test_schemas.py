"""Every rendered object validates: built-in kinds against the Kubernetes OpenAPI schema of the
stack's cluster version, custom resources against the pinned CRD schemas in ./schemas."""

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


def _load(name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_strict(json.loads((SCHEMAS / name).read_text())))


VALIDATORS = {key: _load(name) for key, name in CRD_SCHEMAS.items()}


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
def test_custom_resources_match_the_pinned_crd_schemas(rendered: dict[str, str], env: str) -> None:
    kinds = set()
    for path, obj in _objects(rendered, env):
        key = (obj["apiVersion"], obj["kind"])
        group = obj["apiVersion"].rpartition("/")[0]
        if key not in VALIDATORS:
            assert group in BUILTIN_GROUPS, f"{path}: custom resource {key} has no pinned schema"
            continue
        errors = sorted(VALIDATORS[key].iter_errors(obj), key=lambda e: list(e.path))
        assert not errors, f"{path}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors)
        kinds.add(obj["kind"])
    assert {"Application", "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds


def test_strict_crd_schema_rejects_an_unknown_field(rendered: dict[str, str]) -> None:
    app = yaml.safe_load(rendered["prod/events-api.yaml"])
    app["spec"]["syncPolicy"]["automated"]["selfHeel"] = True
    assert list(VALIDATORS[("argoproj.io/v1alpha1", "Application")].iter_errors(app))


def test_openapi_schema_rejects_a_wrong_type(rendered: dict[str, str]) -> None:
    deployment = yaml.safe_load(rendered["prod/events-api/deployment-events-api.yaml"])
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.32", strict=True)
