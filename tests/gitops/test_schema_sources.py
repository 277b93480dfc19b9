"""The CRD schemas in ./schemas are the ones sources.json records, taken at the release tags of the
charts infra/platform/charts.py pins now: a chart bump without a schema refresh, or a schema file
that differs from the recorded one, fails here. Also tests the extraction script's parsing."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest

from infra.platform.charts import ALL_CHARTS
from tests.gitops.schemas import extract
from tests.gitops.test_schemas import SCHEMAS, SOURCES

PINNED = {spec.chart: spec.version for spec in ALL_CHARTS}
TABLE = {source.file_name: source for source in extract.SOURCES}
HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


def pin_problems(entry: dict[str, Any], pinned: dict[str, str]) -> list[str]:
    """Why a recorded schema no longer matches the pins (empty when it does)."""
    chart = entry["chart"]
    if chart not in pinned:
        return [f"chart {chart!r} is not installed by infra/platform/charts.py"]
    problems = []
    if entry["chart_version"] != pinned[chart]:
        problems.append(
            f"charts.py pins {chart} {pinned[chart]}, the schema was taken for "
            f"{entry['chart_version']}"
        )
    tag = extract.release_tag(entry["tag_format"], pinned[chart])
    if entry["tag"] != tag:
        problems.append(
            f"recorded tag {entry['tag']!r} is not the release tag of {chart} {pinned[chart]} "
            f"({tag!r})"
        )
    return problems


def hash_problems(name: str, data: bytes, entry: dict[str, Any]) -> list[str]:
    digest = hashlib.sha256(data).hexdigest()
    if digest == entry["sha256"]:
        return []
    return [f"{name}: sha256 {digest} differs from the recorded {entry['sha256']}"]


REFRESH = (
    "; refresh with `PYTHONPATH=. python tests/gitops/schemas/extract.py` "
    "(tests/gitops/schemas/README.md)"
)


def test_every_schema_file_is_recorded_and_every_record_has_a_file() -> None:
    on_disk = {p.name for p in SCHEMAS.glob("*.json")} - {"sources.json"}
    assert on_disk == set(SOURCES) == set(TABLE)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_schema_file_is_the_recorded_one(name: str) -> None:
    problems = hash_problems(name, (SCHEMAS / name).read_bytes(), SOURCES[name])
    assert not problems, problems[0] + REFRESH


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_schema_is_from_the_pinned_release(name: str) -> None:
    problems = pin_problems(SOURCES[name], PINNED)
    assert not problems, f"{name}: " + "; ".join(problems) + REFRESH


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_record_matches_the_extraction_table(name: str) -> None:
    entry, source = SOURCES[name], TABLE[name]
    assert (entry["apiVersion"], entry["kind"]) == (source.api_version, source.kind)
    assert (entry["repository"], entry["path"], entry["tag_format"], entry["why"]) == (
        source.repository,
        source.path,
        source.tag_format,
        source.why,
    )
    assert entry["chart"] == source.chart.chart and entry["tag"] == source.tag
    assert HEX40.match(entry["commit"]), entry["commit"]
    assert HEX64.match(entry["upstream_sha256"]) and HEX64.match(entry["sha256"])
    assert entry["served"] is True and entry["scope"] in ("Namespaced", "Cluster")
    assert entry["edits"] == [], "the schemas are taken unedited"


def test_a_chart_bump_is_caught() -> None:
    entry = SOURCES["keda.sh_v1alpha1_scaledobject.json"]
    assert pin_problems(entry, PINNED) == []
    assert pin_problems(entry, {**PINNED, "keda": "2.18.0"}) == [
        "charts.py pins keda 2.18.0, the schema was taken for 2.17.2",
        "recorded tag 'v2.17.2' is not the release tag of keda 2.18.0 ('v2.18.0')",
    ]


def test_an_edited_schema_file_is_caught() -> None:
    name = "keda.sh_v1alpha1_scaledobject.json"
    data = (SCHEMAS / name).read_bytes()
    assert hash_problems(name, data, SOURCES[name]) == []
    (problem,) = hash_problems(name, data.replace(b'"integer"', b'"string"', 1), SOURCES[name])
    assert problem.startswith(f"{name}: sha256 ")


# --- the extraction script's parsing (on a small CRD file shaped like the charts' templates) ---

CHART_TEMPLATE = """\
{{- if .Values.crds.install }}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
  labels:
    app.kubernetes.io/name: {{ .Values.operator.name }}
    {{- include "example.labels" . | indent 4 }}
spec:
  group: example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
  versions:
  - name: v1alpha1
    served: false
    storage: false
    schema:
      openAPIV3Schema: {type: object, properties: {old: {type: string}}}
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            description: the widget
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  scope: Cluster
  names: {kind: Gadget, plural: gadgets}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
{{- end }}
"""


def test_extraction_takes_the_requested_served_version_unedited() -> None:
    schema, entry, scope = extract.crd_schema(CHART_TEMPLATE, "example.com/v1", "Widget")
    assert entry["storage"] is True and scope == "Namespaced"
    assert schema == {
        "type": "object",
        "properties": {
            "spec": {
                "description": "the widget",
                "type": "object",
                "required": ["size"],
                "properties": {"size": {"type": "integer", "minimum": 1}},
            }
        },
    }
    assert extract.crd_schema(CHART_TEMPLATE, "example.com/v1", "Gadget")[2] == "Cluster"


@pytest.mark.parametrize(
    ("api_version", "kind", "message"),
    [
        ("example.com/v1alpha1", "Widget", "version 'v1alpha1' is not served"),
        ("example.com/v2", "Widget", "no version 'v2'; the CRD has ['v1alpha1', 'v1']"),
        ("other.com/v1", "Widget", "expected one CRD in the file, found 0"),
    ],
)
def test_extraction_refuses_what_the_chart_does_not_serve(
    api_version: str, kind: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        extract.crd_schema(CHART_TEMPLATE, api_version, kind)


def test_extraction_refuses_template_text_inside_the_schema() -> None:
    templated = CHART_TEMPLATE.replace("minimum: 1", "minimum: {{ .Values.min }}")
    with pytest.raises(ValueError, match="Helm template text inside the schema"):
        extract.crd_schema(templated, "example.com/v1", "Widget")


def test_extraction_refuses_a_helm_directive_inside_the_spec() -> None:
    templated = CHART_TEMPLATE.replace(
        "              size: {type: integer, minimum: 1}",
        "              {{- if .Values.size }}\n              size: {type: integer}\n"
        "              {{- end }}",
    )
    with pytest.raises(ValueError, match="Helm directive inside a CRD spec"):
        extract.crd_schema(templated, "example.com/v1", "Widget")
