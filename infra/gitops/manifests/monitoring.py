"""ServiceMonitor, PrometheusRule (with runbook links) and a Grafana dashboard per app.

Metric names are the ones the apps export (`apps/common`): HTTP metrics for the API, consumer
outcome/latency metrics and a dead-letter counter for consumers. Consumer lag comes from KEDA's
own metrics (`keda_scaler_metrics_value`), which KEDA already computes to scale the consumer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from infra.contracts import APP_NAMESPACE
from infra.gitops.catalog import AppSpec
from infra.gitops.manifests.common import (
    PROMETHEUS_RELEASE_LABEL,
    EnvContext,
    Manifest,
    metadata,
    selector,
)
from infra.gitops.manifests.workload import HTTP_PORT_NAME

RUNBOOKS_DOC = "docs/runbooks.md"
HTTP_REQUESTS = "http_requests_total"
HTTP_DURATION = "http_request_duration_seconds"
CONSUMER_MESSAGES = "consumer_messages_total"
CONSUMER_DURATION = "consumer_processing_seconds"
DEAD_LETTERS = "dead_letters_total"
KEDA_LAG = "keda_scaler_metrics_value"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    runbook: str
    """Anchor of the section in docs/runbooks.md."""
    panel: str
    """What the dashboard plots for this alert."""


def runbook_url(ctx: EnvContext, anchor: str) -> str:
    repo = ctx.cfg.gitops.repo_url.removesuffix(".git")
    return f"{repo}/blob/{ctx.cfg.gitops.target_revision}/{RUNBOOKS_DOC}#{anchor}"


def alerts(spec: AppSpec, ctx: EnvContext) -> list[Alert]:
    app = spec.name
    job = f'job="{app}",namespace="{APP_NAMESPACE}"'
    if spec.contract.kind == "producer":
        rate_all = f"sum(rate({HTTP_REQUESTS}{{{job}}}[5m]))"
        rate_err = f'sum(rate({HTTP_REQUESTS}{{{job},status=~"5.."}}[5m]))'
        p99 = f"histogram_quantile(0.99, sum by (le) (rate({HTTP_DURATION}_bucket{{{job}}}[5m])))"
        return [
            Alert(
                "HighErrorRate",
                f"{rate_err} / {rate_all} > 0.05",
                "10m",
                "critical",
                f"{app}: more than 5% of requests fail",
                "high-error-rate",
                f"{rate_err} / {rate_all}",
            ),
            Alert(
                "HighLatencyP99",
                f"{p99} > 0.5",
                "10m",
                "warning",
                f"{app}: p99 latency above 500 ms",
                "high-latency-p99",
                p99,
            ),
        ]
    sizing = spec.sizing[ctx.env]
    rate_all = f"sum(rate({CONSUMER_MESSAGES}{{{job}}}[5m]))"
    rate_err = f'sum(rate({CONSUMER_MESSAGES}{{{job},outcome!="ok"}}[5m]))'
    p99 = f"histogram_quantile(0.99, sum by (le) (rate({CONSUMER_DURATION}_bucket{{{job}}}[5m])))"
    lag = f'sum({KEDA_LAG}{{namespace="{APP_NAMESPACE}",scaledObject="{app}"}})'
    dlq = f"sum(increase({DEAD_LETTERS}{{{job}}}[15m]))"
    # Sustained lag above what the maximum replica count is meant to absorb.
    lag_limit = spec.lag_threshold * sizing.max_replicas
    return [
        Alert(
            "HighErrorRate",
            f"{rate_err} / {rate_all} > 0.05",
            "10m",
            "critical",
            f"{app}: more than 5% of records fail",
            "high-error-rate",
            f"{rate_err} / {rate_all}",
        ),
        Alert(
            "HighLatencyP99",
            f"{p99} > 2",
            "15m",
            "warning",
            f"{app}: p99 processing time above 2 s",
            "high-latency-p99",
            p99,
        ),
        Alert(
            "ConsumerLagHigh",
            f"{lag} > {lag_limit}",
            "15m",
            "warning",
            f"{app}: consumer-group lag above {lag_limit} records",
            "consumer-lag",
            lag,
        ),
        Alert(
            "DeadLetterGrowth",
            f"{dlq} > 0",
            "5m",
            "warning",
            f"{app}: records are being dead-lettered",
            "dead-letter-growth",
            dlq,
        ),
    ]


def service_monitor(spec: AppSpec, wave: int) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(
            spec.name, spec.name, wave=wave, extra_labels=PROMETHEUS_RELEASE_LABEL
        ),
        "spec": {
            "selector": {"matchLabels": selector(spec.name)},
            "namespaceSelector": {"matchNames": [APP_NAMESPACE]},
            "endpoints": [
                {"port": HTTP_PORT_NAME, "path": spec.probes.metrics_path, "interval": "30s"}
            ],
        },
    }


def prometheus_rule(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    rules = [
        {
            "alert": f"{_camel(spec.name)}{alert.name}",
            "expr": alert.expr,
            "for": alert.for_,
            "labels": {"severity": alert.severity, "app": spec.name},
            "annotations": {
                "summary": alert.summary,
                "runbook_url": runbook_url(ctx, alert.runbook),
            },
        }
        for alert in alerts(spec, ctx)
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata(
            spec.name, spec.name, wave=wave, extra_labels=PROMETHEUS_RELEASE_LABEL
        ),
        "spec": {"groups": [{"name": spec.name, "rules": rules}]},
    }


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def dashboard_json(spec: AppSpec, ctx: EnvContext) -> str:
    panels = [
        {
            "id": index + 1,
            "type": "timeseries",
            "title": alert.summary.split(": ", 1)[-1],
            "datasource": {"type": "prometheus", "uid": "prometheus"},
            "gridPos": {"h": 8, "w": 12, "x": (index % 2) * 12, "y": (index // 2) * 8},
            "targets": [{"refId": "A", "expr": alert.panel}],
        }
        for index, alert in enumerate(alerts(spec, ctx))
    ]
    dashboard = {
        "uid": f"event-platform-{spec.name}",
        "title": f"{spec.name} ({ctx.env})",
        "tags": ["event-platform", spec.name],
        "timezone": "utc",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def dashboard_config_map(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    """Picked up by kube-prometheus-stack's Grafana sidecar via the `grafana_dashboard` label."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            f"{spec.name}-dashboard",
            spec.name,
            component="monitoring",
            wave=wave,
            extra_labels={"grafana_dashboard": "1"},
        ),
        "data": {f"{spec.name}.json": dashboard_json(spec, ctx)},
    }
