"""The CRD schemas in ./schemas/{older,newer} are the ones recorded in schemas/sources.json, filed
against the chart versions infra/platform/charts.py pins, and placed where sources.json says
relative to each pin: a chart bump without a schema refresh, a schema file swapped for another,
or a version claim that does not hold fails here."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from typing import Any

import pytest

from infra.platform.charts import ALL_CHARTS
from tests.gitops.test_schemas import BRACKETS, CRD_SCHEMAS, SCHEMAS, SOURCES

PINNED = {spec.chart: spec.version for spec in ALL_CHARTS}
ENTRIES = [(bracket, name) for bracket in BRACKETS for name in sorted(SOURCES[bracket])]
GENERATORS = {"older": "extract_from_npm.py", "newer": "extract_crd_schema.py"}

# Charts whose two brackets are both older than the pin (no newer schema could be verified
# offline): there the check brackets nothing, and README.md must say so.
BOTH_BELOW_PIN = {"keda"}

# One field per schema that the newer bracket has and the older lacks: a content check of which
# file is which, independent of the hashes.
NEWER_FIELDS = {
    "argoproj.io_v1alpha1_application.json": ("spec", "sourceHydrator"),
    "argoproj.io_v1alpha1_appproject.json": ("spec", "destinationServiceAccounts"),
    "keda.sh_v1alpha1_scaledobject.json": ("spec", "initialCooldownPeriod"),
    "keda.sh_v1alpha1_triggerauthentication.json": ("spec", "awsSecretManager"),
    "monitoring.coreos.com_v1_servicemonitor.json": ("spec", "scrapeProtocols"),
    "monitoring.coreos.com_v1_prometheusrule.json": ("status",),
}


def _version(text: str) -> tuple[int, ...]:
    """`v0.84.x` -> (0, 84); `2.16.1` -> (2, 16, 1)."""
    return tuple(int(part) for part in re.findall(r"\d+", text))


def _has(schema: dict[str, Any], path: tuple[str, ...]) -> bool:
    for field in path:
        if field not in schema.get("properties", {}):
            return False
        schema = schema["properties"][field]
    return True


def test_every_schema_has_a_recorded_source() -> None:
    assert set(SOURCES) == set(BRACKETS)
    for bracket in BRACKETS:
        assert set(SOURCES[bracket]) == set(CRD_SCHEMAS.values()) == set(NEWER_FIELDS), bracket
        on_disk = {p.name for p in (SCHEMAS / bracket).glob("*.json")}
        assert on_disk == set(SOURCES[bracket]), f"{bracket}/: unrecorded or missing schema files"
        for (api_version, kind), name in CRD_SCHEMAS.items():
            entry = SOURCES[bracket][name]
            assert (entry["apiVersion"], entry["kind"]) == (api_version, kind), (bracket, name)


@pytest.mark.parametrize(("bracket", "name"), ENTRIES)
def test_schema_files_are_the_recorded_ones(bracket: str, name: str) -> None:
    digest = hashlib.sha256((SCHEMAS / bracket / name).read_bytes()).hexdigest()
    assert digest == SOURCES[bracket][name]["sha256"], (
        f"{bracket}/{name} is not the file recorded in schemas/sources.json; regenerate it with "
        f"{bracket}/{GENERATORS[bracket]} from the recorded source and update sources.json"
    )


@pytest.mark.parametrize(("bracket", "name"), ENTRIES)
def test_schemas_were_filed_for_the_pinned_chart(bracket: str, name: str) -> None:
    entry = SOURCES[bracket][name]
    chart, recorded = entry["chart"], entry["pinned_chart_version"]
    assert chart in PINNED, f"{bracket}/{name}: chart {chart!r} is not installed by charts.py"
    assert recorded == PINNED[chart], (
        f"infra/platform/charts.py pins {chart} {PINNED[chart]}, but {bracket}/{name} was filed "
        f"for {recorded}: refresh the CRD schemas for the new chart (tests/gitops/schemas/"
        "README.md) and update sources.json"
    )
    assert entry["exact"] == (entry["source"]["chart_version"] == recorded), (bracket, name)
    # The same pin is described the same way in both brackets.
    other = SOURCES[BRACKETS[1 - BRACKETS.index(bracket)]][name]
    assert entry["pinned_app_version"] == other["pinned_app_version"], name


@pytest.mark.parametrize(("bracket", "name"), ENTRIES)
def test_position_against_the_pin_holds(bracket: str, name: str) -> None:
    entry = SOURCES[bracket][name]
    assert entry["vs_pin"] in {"older", "newer"}, (bracket, name)
    version = entry["source"]["app_version"]
    if version is None:  # the one unversioned file: its note must say why it is filed as older
        assert entry["vs_pin"] == "older" and "unknown" in entry["source"]["note"], name
        return
    ours, pin = _version(version), _version(entry["pinned_app_version"])
    n = min(len(ours), len(pin))
    expected = "older" if ours[:n] < pin[:n] else "newer" if ours[:n] > pin[:n] else "same"
    assert entry["vs_pin"] == expected, (bracket, name, version, entry["pinned_app_version"])


@pytest.mark.parametrize("name", sorted(CRD_SCHEMAS.values()))
def test_brackets_straddle_the_pin_except_where_documented(name: str) -> None:
    older, newer = (SOURCES[bracket][name] for bracket in BRACKETS)
    expected = ("older", "older") if older["chart"] in BOTH_BELOW_PIN else ("older", "newer")
    assert (older["vs_pin"], newer["vs_pin"]) == expected, name
    if older["source"]["app_version"] and newer["source"]["app_version"]:
        assert _version(older["source"]["app_version"]) < _version(newer["source"]["app_version"])


@pytest.mark.parametrize("name", sorted(NEWER_FIELDS))
def test_newer_bracket_has_fields_the_older_lacks(name: str) -> None:
    older, newer = (json.loads((SCHEMAS / b / name).read_text()) for b in BRACKETS)
    assert _has(newer, NEWER_FIELDS[name]) and not _has(older, NEWER_FIELDS[name]), name


def test_npm_generator_matches_the_recorded_packages() -> None:
    path = SCHEMAS / "older" / GENERATORS["older"]
    spec = importlib.util.spec_from_file_location("extract_from_npm", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    recorded: dict[str, dict[str, str]] = {}
    for name, entry in SOURCES["older"].items():
        source = entry["source"]
        package = f"{source['npm_package']}@{source['npm_version']}"
        recorded.setdefault(package, {})[name] = source["member"]
    assert recorded == module.SOURCES, "extract_from_npm.py and sources.json disagree"


def test_readme_lists_every_source() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    for name, entry in SOURCES["newer"].items():
        assert name in readme and entry["source"]["commit"] in readme, name
    for name, entry in SOURCES["older"].items():
        source = entry["source"]
        package = f"{source['npm_package']}@{source['npm_version']}"
        assert package in readme and source["integrity"] in readme, name
    charts = {e["chart"] for bracket in BRACKETS for e in SOURCES[bracket].values()}
    for chart, version in PINNED.items():
        if chart in charts:
            assert f"{chart} {version}" in readme, chart
    # The exception is written down where a reader looks for the rationale.
    for chart in BOTH_BELOW_PIN:
        assert f"{chart}: both older than the pin" in readme.lower(), chart
