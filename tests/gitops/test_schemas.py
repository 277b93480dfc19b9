"""What a real apply would refuse, without an API server.

Built-in kinds are checked against the Kubernetes OpenAPI schema of each stack's cluster version
(kubernetes-validate). Every custom resource, the ones rendered into gitops/<env>/ and the ones
the Pulumi program declares (run under the SDK mocks), goes through the API server's create path
(`schemas/apiserver.py`) with the CRD schema of the exact pinned chart release
(`schemas/sources.json`, `schemas/README.md`):

- rendered objects are applied by Argo CD, which sends `fieldValidation=Strict`: an unknown
  field is a refusal, like a wrong type, a missing required field, an enum/pattern/range
  violation, a duplicate list-map key or a failed CEL rule;
- declared objects are applied by the Pulumi provider with `fieldValidation=Warn`: an unknown
  field is dropped with a warning, not refused. The test fails on it all the same (a field the
  server silently drops is configuration that never takes effect), and says which it is.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from infra.config import load_stack_file
from infra.contracts import ENVIRONMENTS
from platform_cli.offline import run_stack
from tests.gitops.schemas.apiserver import (
    STRING_FORMAT_CHECKS,
    UNCHECKED_FORMATS,
    CrdSchema,
    FieldValidation,
    subschemas,
)

SCHEMAS = Path(__file__).parent / "schemas"
SOURCES: dict[str, dict[str, Any]] = json.loads((SCHEMAS / "sources.json").read_text())["schemas"]
CRDS: dict[tuple[str, str], CrdSchema] = {
    (entry["apiVersion"], entry["kind"]): CrdSchema.load(
        SCHEMAS / name,
        entry["apiVersion"],
        entry["kind"],
        namespaced=entry["scope"] == "Namespaced",
    )
    for name, entry in SOURCES.items()
}
LABELS = {
    (e["apiVersion"], e["kind"]): (
        f"{e['kind']} CRD of {e['chart']} {e['chart_version']} ({e['repository']}@{e['tag']})"
    )
    for e in SOURCES.values()
}
BUILTIN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io"}


def is_custom(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return group not in BUILTIN_GROUPS and not group.endswith(".k8s.io")


def schema_errors(obj: dict[str, Any], field_validation: FieldValidation = "Strict") -> list[str]:
    """Every reason the API server would refuse to create `obj`, naming the CRD release."""
    key = (obj["apiVersion"], obj["kind"])
    if key not in CRDS:
        return [f"{key}: no CRD schema of a pinned release (tests/gitops/schemas/sources.json)"]
    admission = CRDS[key].admit(obj, field_validation=field_validation)
    return [f"{reason} (refused by the {LABELS[key]})" for reason in admission.refused]


def _rendered_objects(rendered: dict[str, str], env: str) -> list[tuple[str, dict[str, Any]]]:
    return [(p, yaml.safe_load(t)) for p, t in rendered.items() if p.startswith(f"{env}/")]


@pytest.fixture(scope="module")
def declared() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """(resource name, body) of every custom resource each stack's program declares."""
    out = {}
    for env in ENVIRONMENTS:
        resources = run_stack(load_stack_file(env)).resources
        out[env] = [
            (r.name, r.inputs)
            for r in resources
            if r.type.startswith("kubernetes:")
            and "apiVersion" in r.inputs
            and is_custom(r.inputs["apiVersion"])
        ]
    return out


@pytest.fixture(scope="module")
def samples(
    rendered: dict[str, str], declared: dict[str, list[tuple[str, dict[str, Any]]]]
) -> dict[str, dict[str, Any]]:
    """One real object per kind (rendered first, else declared), for the negative cases."""
    out: dict[str, dict[str, Any]] = {}
    for env in ENVIRONMENTS:
        for _, obj in [*_rendered_objects(rendered, env), *declared[env]]:
            if (obj["apiVersion"], obj["kind"]) in CRDS:
                out.setdefault(obj["kind"], obj)
    return out


# --- built-in kinds ---------------------------------------------------------------------------


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
    for path, obj in _rendered_objects(rendered, env):
        if is_custom(obj["apiVersion"]):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked > 20


def test_openapi_schema_rejects_a_wrong_type(rendered: dict[str, str]) -> None:
    deployment = yaml.safe_load(rendered["prod/events-api/deployment-events-api.yaml"])
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.32", strict=True)


# --- custom resources: everything we render or declare is admitted ---------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_custom_resources_are_admitted(rendered: dict[str, str], env: str) -> None:
    failures = []
    kinds = set()
    for path, obj in _rendered_objects(rendered, env):
        if is_custom(obj["apiVersion"]):
            failures += [f"{path}: {error}" for error in schema_errors(obj, "Strict")]
            kinds.add(obj["kind"])
    assert not failures, "\n".join(failures)
    assert {"Application", "ScaledObject", "ServiceMonitor", "PrometheusRule"} <= kinds


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_declared_custom_resources_are_admitted_and_nothing_is_dropped(
    declared: dict[str, list[tuple[str, dict[str, Any]]]], env: str
) -> None:
    failures = []
    for name, obj in declared[env]:
        failures += [f"{name}: {error}" for error in schema_errors(obj, "Warn")]
        key = (obj["apiVersion"], obj["kind"])
        if key in CRDS:
            for path in CRDS[key].admit(obj, field_validation="Warn").pruned:
                failures.append(
                    f"{name}: {path}: unknown to the {LABELS[key]}; the server would silently "
                    "drop it (Pulumi applies with fieldValidation=Warn)"
                )
    assert not failures, "\n".join(failures)
    assert {"Application", "AppProject", "ExternalSecret", "ClusterSecretStore"} <= {
        obj["kind"] for _, obj in declared[env]
    }


def test_every_schema_is_used_by_some_object(samples: dict[str, dict[str, Any]]) -> None:
    # A schema no object exercises would be dead weight; a kind without a schema fails above.
    assert set(samples) == {kind for _, kind in CRDS}


def test_every_format_in_the_schemas_is_checked_or_known_to_be_unchecked() -> None:
    known = set(STRING_FORMAT_CHECKS) | UNCHECKED_FORMATS
    for (_, kind), crd in CRDS.items():
        assert crd.formats() <= known, f"{kind}: formats {crd.formats() - known} not modelled"


# --- custom resources: every kind refuses what the server refuses -----------------------------


At = tuple[str | int, ...]
"""Where a value sits in a document: keys and list indexes from the root."""


def _present(
    value: Any, schema: dict[str, Any], at: At = ()
) -> Iterator[tuple[At, Any, dict[str, Any]]]:
    """(path, value, schema) of every present value the schema declares, parents first, in
    document order."""
    yield at, value, schema
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key in schema["properties"]:
                yield from _present(item, schema["properties"][key], (*at, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _present(item, schema["items"], (*at, index))


def _leaves(value: Any, schema: dict[str, Any]) -> list[tuple[At, dict[str, Any]]]:
    """(path, schema) of every present value of a plain declared type."""
    return [
        (at, node)
        for at, _, node in _present(value, schema)
        if at and node.get("type") and not node.get("x-kubernetes-int-or-string")
    ]


def _dotted(at: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at).lstrip(".")


def _set(obj: dict[str, Any], at: tuple[str | int, ...], value: Any) -> None:
    for part in at[:-1]:
        obj = obj[part]  # type: ignore[index]
    obj[at[-1]] = value  # type: ignore[index]


KINDS = sorted(kind for _, kind in CRDS)


def _crd(kind: str) -> CrdSchema:
    (crd,) = [crd for (_, k), crd in CRDS.items() if k == kind]
    return crd


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_type_is_refused(samples: dict[str, dict[str, Any]], kind: str) -> None:
    crd = _crd(kind)
    spec_leaves = [(at, s) for at, s in _leaves(samples[kind], crd.schema) if at[0] == "spec"]
    scalars = [(at, s) for at, s in spec_leaves if s["type"] in ("string", "integer", "boolean")]
    assert scalars, f"{kind}: the sample sets no typed scalar in spec"
    at, schema = scalars[-1]
    broken = copy.deepcopy(samples[kind])
    _set(broken, at, {"string": 7, "integer": "seven", "boolean": "yes"}[schema["type"]])
    errors = crd.admit(broken, field_validation="Strict").refused
    wrong = {"string": "7", "integer": "'seven'", "boolean": "'yes'"}[schema["type"]]
    assert f"{_dotted(at)}: {wrong} is not of type '{schema['type']}'" in errors, errors
    assert all(error.startswith(_dotted(at)) for error in errors), errors


def _required_present(value: Any, schema: dict[str, Any]) -> list[tuple[At, str]]:
    """(parent path, field) of every required field that is present and has no default."""
    return [
        (at, field)
        for at, node, node_schema in _present(value, schema)
        if isinstance(node, dict) and "properties" in node_schema
        for field in node_schema.get("required", [])
        if field in node and "default" not in node_schema["properties"].get(field, {})
    ]


# Kinds whose CRD declares no required field at all (checked below, so the list cannot go stale).
NOTHING_REQUIRED: set[str] = set()


@pytest.mark.parametrize("kind", KINDS)
def test_a_missing_required_field_is_refused(samples: dict[str, dict[str, Any]], kind: str) -> None:
    crd = _crd(kind)
    if kind in NOTHING_REQUIRED:
        assert not any("required" in node for node in subschemas(crd.schema)), kind
        return
    candidates = [
        (at, f)
        for at, f in _required_present(samples[kind], crd.schema)
        if at or f not in ("apiVersion", "kind", "metadata")
    ]
    assert candidates, f"{kind}: the sample sets no required field without a default"
    at, field = candidates[-1]
    broken = copy.deepcopy(samples[kind])
    parent = broken
    for part in at:
        parent = parent[part]
    del parent[field]
    errors = crd.admit(broken, field_validation="Strict").refused
    assert f"{_dotted(at) or '<root>'}: '{field}' is a required property" in errors, errors


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_field_is_refused_when_strict_and_dropped_when_warn(
    samples: dict[str, dict[str, Any]], kind: str
) -> None:
    crd = _crd(kind)
    broken = copy.deepcopy(samples[kind])
    broken["spec"]["notAField"] = True
    assert crd.admit(broken, field_validation="Strict").refused == (
        "spec.notAField: unknown field (fieldValidation=Strict)",
    )
    warned = crd.admit(broken, field_validation="Warn")
    assert warned.refused == () and warned.pruned == ("spec.notAField",)
    assert "notAField" not in warned.stored["spec"]


# --- the semantics chosen in schemas/apiserver.py, one case each ------------------------------


def _admit(obj: dict[str, Any], mode: FieldValidation = "Strict") -> tuple[str, ...]:
    return CRDS[(obj["apiVersion"], obj["kind"])].admit(obj, field_validation=mode).refused


def test_an_enum_violation_is_refused(samples: dict[str, dict[str, Any]]) -> None:
    monitor = copy.deepcopy(samples["ServiceMonitor"])
    monitor["spec"]["endpoints"][0]["scheme"] = "ftp"
    (error,) = _admit(monitor)
    assert error.startswith("spec.endpoints[0].scheme: 'ftp' is not one of ['http', 'https']")


def test_patterns_are_matched_like_go_regexp(samples: dict[str, dict[str, Any]]) -> None:
    # Python's `$` also matches before a trailing newline; Go's RE2 does not, so "5m\n" is
    # refused by the server and must be refused here.
    rule = copy.deepcopy(samples["PrometheusRule"])
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5m\n"
    (error,) = _admit(rule)
    assert error.startswith("spec.groups[0].rules[0].for: '5m\\n' does not match")


def test_a_value_below_the_minimum_is_refused(samples: dict[str, dict[str, Any]]) -> None:
    pool = copy.deepcopy(samples["KafkaNodePool"])
    pool["spec"]["replicas"] = -1
    assert _admit(pool) == ("spec.replicas: -1 is less than the minimum of 0",)


def test_duplicate_list_map_keys_are_refused(samples: dict[str, dict[str, Any]]) -> None:
    rule = copy.deepcopy(samples["PrometheusRule"])
    rule["spec"]["groups"].append(copy.deepcopy(rule["spec"]["groups"][0]))
    (error,) = _admit(rule)
    assert error.startswith("spec.groups[1]: Duplicate map key(s) ['name'] value")


def test_cel_rules_are_evaluated(samples: dict[str, dict[str, Any]]) -> None:
    cluster = copy.deepcopy(samples["Cluster"])
    assert _admit(cluster, "Warn") == ()
    cluster["spec"]["imageCatalogRef"] = {
        "apiGroup": "postgresql.cnpg.io",
        "kind": "ImageCatalog",
        "name": "postgresql",
        "major": 16,
    }
    # `major` also has the transition rule `self == oldSelf`, which only runs on update.
    assert _admit(cluster, "Warn") == (
        "spec: Invalid value: imageName and imageCatalogRef are mutually exclusive",
    )


def test_unknown_fields_below_preserve_unknown_fields_are_kept(
    samples: dict[str, dict[str, Any]],
) -> None:
    kafka = copy.deepcopy(samples["Kafka"])
    kafka["spec"]["kafka"]["config"]["any.broker.setting"] = "x"
    admission = CRDS[(kafka["apiVersion"], "Kafka")].admit(kafka, field_validation="Strict")
    assert admission.refused == () and admission.pruned == ()
    assert admission.stored["spec"]["kafka"]["config"]["any.broker.setting"] == "x"


def test_defaults_are_applied_before_validation(samples: dict[str, dict[str, Any]]) -> None:
    cluster = samples["Cluster"]
    assert "primaryUpdateStrategy" not in cluster["spec"]
    stored = CRDS[(cluster["apiVersion"], "Cluster")].admit(cluster, field_validation="Warn")
    assert stored.stored["spec"]["primaryUpdateStrategy"] == "unsupervised"


def test_a_null_for_a_non_nullable_field_is_dropped(samples: dict[str, dict[str, Any]]) -> None:
    app = copy.deepcopy(samples["Application"])
    app["spec"]["revisionHistoryLimit"] = None
    admission = CRDS[(app["apiVersion"], "Application")].admit(app, field_validation="Strict")
    assert admission.refused == () and "revisionHistoryLimit" not in admission.stored["spec"]


def test_string_formats_are_checked(samples: dict[str, dict[str, Any]]) -> None:
    store = copy.deepcopy(samples["ClusterSecretStore"])
    store["spec"]["provider"]["kubernetes"]["server"]["caBundle"] = "not base64!"
    (error,) = _admit(store, "Warn")
    assert error == "spec.provider.kubernetes.server.caBundle: 'not base64!' is not a 'byte'"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "Events_API", "metadata.name: Invalid value: 'Events_API': must be a lowercase"),
        ("labels", {"app": "-x"}, "metadata.labels[app]: Invalid value: '-x': not a label value"),
        ("finalizers", ["a/b/c"], "metadata.finalizers[0]: Invalid value: 'a/b/c': a qualified"),
        ("namespace", "Apps", "metadata.namespace: Invalid value: 'Apps': must be an RFC 1123"),
    ],
)
def test_object_meta_is_validated(
    samples: dict[str, dict[str, Any]], field: str, value: Any, expected: str
) -> None:
    app = copy.deepcopy(samples["Application"])
    app["metadata"][field] = value
    (error,) = _admit(app)
    assert error.startswith(expected), error


def test_a_namespace_on_a_cluster_scoped_kind_is_refused(
    samples: dict[str, dict[str, Any]],
) -> None:
    store = copy.deepcopy(samples["ClusterSecretStore"])
    store["metadata"]["namespace"] = "apps"
    assert _admit(store, "Warn") == ("metadata.namespace: Forbidden: not allowed on this type",)


def test_schema_errors_name_the_pinned_release(samples: dict[str, dict[str, Any]]) -> None:
    scaled = copy.deepcopy(samples["ScaledObject"])
    scaled["spec"]["maxReplicaCount"] = "ten"
    assert schema_errors(scaled) == [
        "spec.maxReplicaCount: 'ten' is not of type 'integer' (refused by the ScaledObject CRD "
        "of keda 2.17.2 (kedacore/charts@v2.17.2))"
    ]
