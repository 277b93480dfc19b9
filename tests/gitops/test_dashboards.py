"""Each app's Grafana dashboard: rate, errors, latency percentiles, consumer lag and outbox depth,
next to one panel per alert; every metric it (or an alert) queries is one the apps export."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

import apps.events_api.metrics  # noqa: F401 - registers the API's metrics in REGISTRY
from apps.audit.metrics import AuditMetrics
from apps.notifier.metrics import NotifierMetrics
from apps.reminders.metrics import RemindersMetrics
from infra.config import load_stack_file
from infra.contracts import ENVIRONMENTS
from infra.gitops.catalog import APP_SPECS
from infra.gitops.manifests.common import EnvContext
from infra.gitops.manifests.monitoring import alerts, dashboard_json

PREFIXES = tuple(f"{spec.metrics_prefix}_" for spec in APP_SPECS)
METRIC = re.compile(r"\b(?:" + "|".join(PREFIXES) + r")[a-z0-9_]+\b")


def exported_series() -> set[str]:
    """The series names the apps' registries expose (counters as _total, histograms' parts)."""
    registries = [REGISTRY]
    for metrics in (AuditMetrics, NotifierMetrics, RemindersMetrics):
        registry = CollectorRegistry()
        metrics(registry)
        registries.append(registry)
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "histogram":
                names.update(f"{family.name}{part}" for part in ("_bucket", "_count", "_sum"))
            if family.type == "counter":
                names.add(f"{family.name}_total")
    return names


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("spec", APP_SPECS, ids=[s.name for s in APP_SPECS])
def test_dashboard_shows_the_overview_next_to_the_alerts(env: str, spec) -> None:  # type: ignore[no-untyped-def]
    ctx = EnvContext(load_stack_file(env))
    dashboard = json.loads(dashboard_json(spec, ctx))
    titles = [panel["title"] for panel in dashboard["panels"]]
    overview = " | ".join(titles[:5]).lower()
    for part in ("rate", "error", "latency percentiles", "consumer lag", "outbox depth"):
        assert part in overview, (part, titles)
    latency = dashboard["panels"][2]["targets"]
    assert [t["legendFormat"] for t in latency] == ["p50", "p95", "p99"]
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for alert in alerts(spec, ctx):
        assert alert.panel in expressions, alert.name
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_queried_metric_is_exported_by_an_app() -> None:
    exported = exported_series()
    ctx = EnvContext(load_stack_file("prod"))
    queried: set[str] = set()
    for spec in APP_SPECS:
        dashboard = json.loads(dashboard_json(spec, ctx))
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                queried.update(METRIC.findall(target["expr"]))
        for alert in alerts(spec, ctx):
            queried.update(METRIC.findall(alert.expr))
    assert queried, "no app metric found in the dashboards"
    assert sorted(queried - exported) == []
