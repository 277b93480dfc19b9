"""The CRD schemas in ./schemas are the ones recorded in schemas/sources.json, filed against the
chart versions infra/platform/charts.py pins: a chart bump without a schema refresh, or a schema
file swapped for another, fails here."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from infra.platform.charts import ALL_CHARTS
from tests.gitops.test_schemas import CRD_SCHEMAS, SCHEMAS

SOURCES: dict[str, dict[str, Any]] = json.loads((SCHEMAS / "sources.json").read_text())["schemas"]
PINNED = {spec.chart: spec.version for spec in ALL_CHARTS}

# One field per schema that the previous (npm-derived: Argo CD 2.10.8, KEDA 2.10.1,
# prometheus-operator 0.57.0) files lack, as a content check independent of the hashes.
NEWER_FIELDS = {
    "argoproj.io_v1alpha1_application.json": ("spec", "sourceHydrator"),
    "argoproj.io_v1alpha1_appproject.json": ("spec", "destinationServiceAccounts"),
    "keda.sh_v1alpha1_scaledobject.json": ("spec", "initialCooldownPeriod"),
    "keda.sh_v1alpha1_triggerauthentication.json": ("spec", "awsSecretManager"),
    "monitoring.coreos.com_v1_servicemonitor.json": ("spec", "scrapeProtocols"),
    "monitoring.coreos.com_v1_prometheusrule.json": ("status",),
}


def test_every_schema_has_a_recorded_source() -> None:
    assert set(SOURCES) == set(CRD_SCHEMAS.values()) == set(NEWER_FIELDS)
    for (api_version, kind), name in CRD_SCHEMAS.items():
        assert (SOURCES[name]["apiVersion"], SOURCES[name]["kind"]) == (api_version, kind), name


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_schema_files_are_the_recorded_ones(name: str) -> None:
    digest = hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest()
    assert digest == SOURCES[name]["sha256"], (
        f"{name} is not the file recorded in schemas/sources.json; regenerate it with "
        "extract_crd_schema.py from the recorded source and update sources.json"
    )


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_schemas_were_filed_for_the_pinned_chart(name: str) -> None:
    entry = SOURCES[name]
    chart, recorded = entry["chart"], entry["pinned_chart_version"]
    assert chart in PINNED, f"{name}: chart {chart!r} is not installed by infra/platform/charts.py"
    assert recorded == PINNED[chart], (
        f"infra/platform/charts.py pins {chart} {PINNED[chart]}, but {name} was filed for "
        f"{recorded}: refresh the CRD schemas for the new chart (tests/gitops/schemas/README.md) "
        "and update sources.json"
    )
    assert entry["exact"] == (entry["source"]["chart_version"] == recorded), name


@pytest.mark.parametrize("name", sorted(NEWER_FIELDS))
def test_schemas_are_newer_than_the_npm_ones(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text())
    for field in NEWER_FIELDS[name]:
        schema = schema["properties"][field]


def test_readme_lists_every_source() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    for name, entry in SOURCES.items():
        assert name in readme and entry["source"]["commit"] in readme, name
    for chart, version in PINNED.items():
        if chart in {e["chart"] for e in SOURCES.values()}:
            assert f"{chart} {version}" in readme, chart
